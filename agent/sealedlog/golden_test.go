package sealedlog

import (
	"bytes"
	"crypto/ecdh"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"
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
