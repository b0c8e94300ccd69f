package sealedlog

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"

	"github.com/cocoon-tee/cocoon/agent/attest"
)

var update = flag.Bool("update", false, "rewrite the golden vectors")

// goldenInput is sealed into testdata/golden-*.txt: a line, a line split
// across writes, a partial line that Close seals, then the final record.
var goldenInput = []string{"hello, owner\n", "split ", "line\n", "no newline"}

func goldenKey(t *testing.T, c ecdh.Curve) *ecdh.PrivateKey {
	k, err := c.NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// matchGolden compares got with the stored file at path (rewriting it
// first with -update) and returns the stored bytes.
func matchGolden(t *testing.T, path string, got []byte) []byte {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("sealing changed:\n got %s\nwant %s", got, want)
	}
	return want
}

// TestGolden pins the format: sealing with a fixed key and a fixed random
// source gives the stored lines byte for byte, and the stored lines open to
// the input.
func TestGolden(t *testing.T) {
	for _, g := range []struct {
		file  string
		curve ecdh.Curve
		kem   uint16
	}{{"golden-x25519.txt", ecdh.X25519(), 0x0020}, {"golden-p256.txt", ecdh.P256(), 0x0010}} {
		t.Run(g.file, func(t *testing.T) {
			priv := goldenKey(t, g.curve)
			path := filepath.Join("testdata", g.file)
			cryptotest.SetGlobalRandom(t, 42)
			got := seal(t, priv.PublicKey(), Options{}, goldenInput...)
			want := matchGolden(t, path, got)
			ls := lines(want)
			// The header's suite, read without this package's parser.
			h := mustDecode(t, ls[0], "cocoon-sealed:v1:h:")
			if binary.BigEndian.Uint16(h) != g.kem || binary.BigEndian.Uint16(h[2:]) != 1 || binary.BigEndian.Uint16(h[4:]) != 2 {
				t.Fatalf("suite %x", h[:6])
			}
			plain, evs := readAll(t, priv, ls)
			if string(plain) != "hello, owner\nsplit line\nno newline" || kinds(evs) != "new 0-0, closed 3-3" {
				t.Fatalf("opened %q [%s]", plain, kinds(evs))
			}
		})
	}
}

// TestGoldenAttested pins an attested container: two streams (stdout and
// stderr) sealed with the fixed key and random source, attested by the
// sample attester (deterministic; it stands in for a TEE), interleaved as
// kubectl shows them. The attestation is checked here without this
// package's parser: its digests are sha256 of the header lines and the
// sample evidence carries sha512 of the label, the count and the digests.
func TestGoldenAttested(t *testing.T) {
	priv := goldenKey(t, ecdh.X25519())
	path := filepath.Join("testdata", "golden-attested-x25519.txt")
	cryptotest.SetGlobalRandom(t, 42)
	out, errS := attestedPair(t, priv.PublicKey(), attest.Sample{}, Options{})
	got := interleaved(t, out, errS)
	want := matchGolden(t, path, got)
	ls := lines(want)
	var headers [][]byte
	var att []byte
	for _, l := range ls {
		switch {
		case bytes.HasPrefix(l, []byte("cocoon-sealed:v1:h:")):
			headers = append(headers, l)
		case bytes.HasPrefix(l, []byte("cocoon-sealed:v1:a:")):
			att = l
		}
	}
	var a struct {
		Tee      string   `json:"tee"`
		Headers  []string `json:"headers"`
		Evidence struct {
			SVN        string `json:"svn"`
			ReportData string `json:"report_data"`
		} `json:"evidence"`
	}
	if err := json.Unmarshal(mustDecode(t, att, "cocoon-sealed:v1:a:"), &a); err != nil || len(headers) != 2 || len(a.Headers) != 2 {
		t.Fatalf("attestation %s: %v", att, err)
	}
	msg := []byte("cocoon sealed log headers v1\x00\x02")
	for i, h := range headers {
		d := sha256.Sum256(bytes.TrimSuffix(h, []byte("\n")))
		if a.Headers[i] != base64.RawURLEncoding.EncodeToString(d[:]) {
			t.Fatalf("digest %d is not sha256 of header line %d", i, i)
		}
		msg = append(msg, d[:]...)
	}
	rd := sha512.Sum512(msg)
	if a.Tee != "sample" || a.Evidence.ReportData != base64.StdEncoding.EncodeToString(rd[:]) {
		t.Fatalf("evidence %+v does not carry the headers' report data", a)
	}
	plain, evs := openAll(t, priv, OpenerOptions{RequireEvidence: true, AllowSample: true}, want)
	if at, _ := attestedStreams(evs); plain != "out one\nerr one\nout two\n" || at["c1/stdout"] != "sample" || at["c1/stderr"] != "sample" || len(problems(evs)) != 0 {
		t.Fatalf("opened %q [%s]", plain, kinds(evs))
	}
}
