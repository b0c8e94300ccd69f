package sealedlog

import (
	"bytes"
	"crypto/ecdh"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

// Skip drops output unsealed and the owner sees exactly there a gap.
func TestSkipLeavesGap(t *testing.T) {
	priv := newKey(t, ecdh.X25519())
	s, err := NewSealer(priv.PublicKey(), "c1/stdout", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	for _, w := range []string{"before\n", "held "} {
		out, err := s.Write([]byte(w))
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, out...)
	}
	s.Skip([]byte("and lost\nlost too\n"))
	if s.Pending() != 0 {
		t.Fatalf("%d bytes still held after Skip", s.Pending())
	}
	sealed, err = s.Append(sealed, []byte("after\n"))
	if err != nil {
		t.Fatal(err)
	}
	sealed = append(sealed, s.Close()...)
	got, evs := readAll(t, priv, lines(sealed))
	if string(got) != "before\nafter\n" || kinds(evs) != "new 0-0, missing 1-1, closed 3-3" {
		t.Fatalf("opened %q [%s]", got, kinds(evs))
	}
}

// Append adds to what dst holds, never more than Bound said, and gives
// the same lines as Write.
func TestAppendWithinBound(t *testing.T) {
	priv := newKey(t, ecdh.P256())
	r := mrand.New(mrand.NewPCG(3, 4))
	s, err := NewSealer(priv.PublicKey(), "c1/stdout", Options{HeaderEvery: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	dst := []byte("kept")
	var want []byte
	for range 500 {
		p := make([]byte, r.IntN(40<<10))
		for j := range p {
			p[j] = "ab \n"[r.IntN(4)]
		}
		want = append(want, p...)
		bound, before := s.Bound(len(p)), len(dst)
		if dst, err = s.Append(dst, p); err != nil {
			t.Fatal(err)
		}
		if len(dst)-before > bound {
			t.Fatalf("sealing %d bytes appended %d, bound %d", len(p), len(dst)-before, bound)
		}
	}
	if !bytes.HasPrefix(dst, []byte("kept")) {
		t.Fatal("Append overwrote dst")
	}
	dst = append(dst, s.Close()...)
	got, evs := readAll(t, priv, lines(dst[len("kept"):]))
	if k := kinds(evs); !bytes.Equal(got, want) || !strings.HasPrefix(k, "new 0-0, closed ") || strings.Count(k, ",") != 1 {
		t.Fatalf("recovered %d bytes, want %d [%s]", len(got), len(want), kinds(evs))
	}
}

// BenchmarkSealerAppend32K is BenchmarkSealer32K the way a sealed stream's
// pump seals: into a reused queue.
func BenchmarkSealerAppend32K(b *testing.B) {
	priv := newKey(b, ecdh.X25519())
	s, err := NewSealer(priv.PublicKey(), "c1/stdout", Options{})
	if err != nil {
		b.Fatal(err)
	}
	logLine := []byte("2026-01-02T03:04:05Z level=info msg=\"request served\" status=200 bytes=5123\n")
	p := bytes.Repeat(logLine, 32<<10/len(logLine)+1)[:32<<10]
	q := make([]byte, 0, 2*s.Bound(len(p)))
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if q, err = s.Append(q[:0], p); err != nil {
			b.Fatal(err)
		}
	}
}
