package stream

import (
	"bytes"
	"testing"
)

// Chunks returned by earlier reads stay intact whether they were copied out
// of the scratch buffer (small) or handed over with it (large).
func TestReadChunksDoNotAlias(t *testing.T) {
	s, child, err := New(Options{PipeSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer child.CloseChild()
	const n = 32 << 10
	var got [][]byte
	for i, size := range []int{3, 100, n, n, 5, n - 1, 1} {
		want := bytes.Repeat([]byte{byte('a' + i)}, size)
		if _, err := child.Stdout.Write(want); err != nil {
			t.Fatal(err)
		}
		d, err := s.Read(Stdout, n)
		if err != nil || !bytes.Equal(d, want) {
			t.Fatalf("read %d: %d bytes, %v", i, len(d), err)
		}
		got = append(got, d)
	}
	for i, d := range got {
		if bytes.Count(d, []byte{byte('a' + i)}) != len(d) {
			t.Errorf("chunk %d was overwritten by a later read", i)
		}
	}
	// Reads larger than the scratch limit and a zero-length read.
	big := bytes.Repeat([]byte{'z'}, maxScratch+1)
	if _, err := child.Stdout.Write(big); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Read(Stdout, 2*maxScratch); err != nil || !bytes.Equal(d, big) {
		t.Fatalf("large read: %d bytes, %v", len(d), err)
	}
	if d, err := s.Read(Stdout, 0); err != nil || d != nil {
		t.Fatalf("zero-length read: %q %v", d, err)
	}
}

// BenchmarkReadSmall is the interactive case: a 32 KiB read that finds one
// log line. It allocates the line, not the 32 KiB.
func BenchmarkReadSmall(b *testing.B) {
	s, child, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	defer child.CloseChild()
	line := []byte("2026-01-01T00:00:00Z level=info msg=\"request served\" status=200\n")
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := child.Stdout.Write(line); err != nil {
			b.Fatal(err)
		}
		if d, err := s.Read(Stdout, 32<<10); err != nil || len(d) != len(line) {
			b.Fatal(len(d), err)
		}
	}
}
