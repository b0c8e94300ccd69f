package execgrant_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

// The report data layout, written out byte by byte here.
func TestSessionReportDataVector(t *testing.T) {
	nonce := "AAECAwQFBgcICQoLDA0ODw"
	hs := [][32]byte{{1}, {2}, {3}}
	msg := "cocoon exec session v1\x00" + "\x00\x16" + nonce + "\x03" +
		"\x01" + strings.Repeat("\x00", 31) + "\x02" + strings.Repeat("\x00", 31) + "\x03" + strings.Repeat("\x00", 31)
	want := sha512.Sum512([]byte(msg))
	got := execgrant.SessionReportData(nonce, hs)
	if got != want {
		t.Fatalf("report data %x, want %x", got, want)
	}
	// The same digest computed outside Go (Python hashlib over the bytes above).
	const golden = "3fbc205ce66dc70c52aff7ca64b1970061298d2234c5abfd01fa0eeb4d6caf3ef84cacb307525c577f9e7cb6d27967820417a992965332b233a41eb69a68a079"
	if h := hex.EncodeToString(got[:]); h != golden {
		t.Fatalf("report data %s, golden %s", h, golden)
	}
	// Every input changes it.
	for _, other := range [][64]byte{
		execgrant.SessionReportData(nonce+"x", hs),
		execgrant.SessionReportData(nonce, [][32]byte{{1}, {2}, {4}}),
		execgrant.SessionReportData(nonce, [][32]byte{{2}, {1}, {3}}),
		execgrant.SessionReportData(nonce, hs[:2]),
	} {
		if other == got {
			t.Fatal("a different input gives the same report data")
		}
	}
}

func newExecAgent(t *testing.T) *sealedlog.ExecAgent {
	t.Helper()
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x, err := sealedlog.NewExecAgent(eph.PublicKey(), "c/e")
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func sessionHeaders(x *sealedlog.ExecAgent) [][]byte {
	key, _, _ := bytes.Cut(x.Preamble, []byte("\n"))
	return [][]byte{key, x.Stdout.Header(), x.Stderr.Header()}
}

func TestAnnounceAndVerify(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    attest.Attester
	}{
		{"sample", attest.Sample{}},
		{"snp", kbstest.SNPAttester(t)},
		{"tdx", kbstest.TDXAttester(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newExecAgent(t)
			nonce := execgrant.NewNonce()
			line, err := execgrant.Announce(context.Background(), tc.a, nonce, x)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 || !execgrant.IsAnnouncement(line) {
				t.Fatalf("not one announcement line: %q", line[:min(len(line), 80)])
			}
			an, err := execgrant.ParseAnnouncement(line)
			if err != nil {
				t.Fatal(err)
			}
			if an.Tee != tc.a.Tee() {
				t.Fatalf("tee %q", an.Tee)
			}
			sample := tc.name == "sample"
			err = an.Verify(nonce, false)
			if sample != errors.Is(err, execgrant.ErrSampleEvidence) || (!sample && err != nil) {
				t.Fatalf("verify without sample allowed: %v", err)
			}
			if err := an.Verify(nonce, true); err != nil {
				t.Fatalf("genuine announcement: %v", err)
			}
			if err := an.Verify(execgrant.NewNonce(), true); !errors.Is(err, execgrant.ErrEvidenceMismatch) {
				t.Fatalf("another grant's nonce: %v", err)
			}
			for i, h := range sessionHeaders(x) {
				if !an.Binds(h) || !an.Binds(append([]byte("2026-11-30T00:00:00Z "), h...)) {
					t.Fatalf("header %d not bound", i)
				}
			}
			for i, h := range sessionHeaders(newExecAgent(t)) {
				if an.Binds(h) {
					t.Fatalf("another session's header %d bound", i)
				}
			}
			if tc.name == "tdx" && bytes.Contains(an.Evidence, []byte("cc_eventlog\":\"")) {
				t.Fatal("the TDX event log was announced")
			}
		})
	}
}

// Evidence made for one session does not verify for another session's
// streams, even with the same nonce.
func TestAnnouncementOfAnotherSession(t *testing.T) {
	nonce := execgrant.NewNonce()
	genuine, err := execgrant.Announce(context.Background(), kbstest.SNPAttester(t), nonce, newExecAgent(t))
	if err != nil {
		t.Fatal(err)
	}
	an, err := execgrant.ParseAnnouncement(genuine)
	if err != nil {
		t.Fatal(err)
	}
	// The host names its own streams but keeps the genuine evidence.
	for i, h := range sessionHeaders(newExecAgent(t)) {
		d, _ := execgrant.HeaderDigest(h)
		an.Headers[i] = base64.RawURLEncoding.EncodeToString(d[:])
	}
	if err := an.Verify(nonce, false); !errors.Is(err, execgrant.ErrEvidenceMismatch) {
		t.Fatalf("evidence of another session: %v", err)
	}
}

func encodeAnn(v any) []byte {
	b, _ := json.Marshal(v)
	return append([]byte(execgrant.AnnouncementPrefix), base64.RawURLEncoding.EncodeToString(b)...)
}

func TestParseAnnouncementRefuses(t *testing.T) {
	d := func(b byte) string { return base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }
	ok := map[string]any{"tee": "sample", "headers": []string{d(1), d(2), d(3)}, "evidence": map[string]string{"svn": "1"}}
	if _, err := execgrant.ParseAnnouncement(encodeAnn(ok)); err != nil {
		t.Fatalf("well-formed: %v", err)
	}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range ok {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for name, line := range map[string][]byte{
		"no prefix":       []byte("cocoon-exec-evidence:v2:e30"),
		"bad base64":      []byte(execgrant.AnnouncementPrefix + "e30="),
		"not json":        append([]byte(execgrant.AnnouncementPrefix), base64.RawURLEncoding.EncodeToString([]byte("{"))...),
		"trailing data":   append([]byte(execgrant.AnnouncementPrefix), base64.RawURLEncoding.EncodeToString(append(must(json.Marshal(ok)), " {}"...))...),
		"unknown field":   encodeAnn(with("extra", 1)),
		"unknown tee":     encodeAnn(with("tee", "sev")),
		"two headers":     encodeAnn(with("headers", []string{d(1), d(2)})),
		"short digest":    encodeAnn(with("headers", []string{d(1), d(2), "AAAA"})),
		"repeated digest": encodeAnn(with("headers", []string{d(1), d(2), d(1)})),
		"no evidence":     encodeAnn(with("evidence", nil)),
		"evidence string": encodeAnn(with("evidence", "x")),
		"too long":        append([]byte(execgrant.AnnouncementPrefix), bytes.Repeat([]byte("A"), execgrant.MaxAnnouncement)...),
	} {
		if _, err := execgrant.ParseAnnouncement(line); !errors.Is(err, execgrant.ErrBadAnnouncement) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzParseAnnouncement(f *testing.F) {
	x, err := sealedlog.NewExecAgent(mustKey(f), "c/e")
	if err != nil {
		f.Fatal(err)
	}
	line, err := execgrant.Announce(context.Background(), attest.Sample{}, "n", x)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(line)
	f.Add([]byte(execgrant.AnnouncementPrefix + "e30"))
	f.Fuzz(func(t *testing.T, line []byte) {
		an, err := execgrant.ParseAnnouncement(line)
		if err != nil {
			if !errors.Is(err, execgrant.ErrBadAnnouncement) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		if len(an.Headers) != execgrant.SessionStreams {
			t.Fatalf("%d headers accepted", len(an.Headers))
		}
		// Verification of whatever parsed never panics, and fails unless
		// the evidence carries this session's report data.
		_ = an.Verify("n", true)
		_ = an.Binds(line)
	})
}

func mustKey(f *testing.F) *ecdh.PublicKey {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	return k.PublicKey()
}
