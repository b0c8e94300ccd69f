package stream

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"
)

// lentIO is a stream fed by a pipe big enough for every test write.
func lentIO(t *testing.T) (*IO, Child) {
	t.Helper()
	s, child, err := New(Options{PipeSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		child.CloseChild()
		s.Close()
	})
	return s, child
}

// readLent writes want and reads it back lent to ctx.
func readLent(t *testing.T, s *IO, child Child, ctx context.Context, want []byte) []byte {
	t.Helper()
	if _, err := child.Stdout.Write(want); err != nil {
		t.Fatal(err)
	}
	d, err := s.ReadLent(ctx, Stdout, 32<<10)
	if err != nil || !bytes.Equal(d, want) {
		t.Fatalf("read %d bytes, %v; want %d", len(d), err, len(want))
	}
	return d
}

// A chunk lent to a request is reused once the request has ended, so the
// runtime's 32 KiB read loop does not allocate 32 KiB per read.
func TestReadLentReusesBuffers(t *testing.T) {
	s, child := lentIO(t)
	chunk := bytes.Repeat([]byte{'r'}, 32<<10)
	read := func() {
		ctx, cancel := context.WithCancel(t.Context())
		readLent(t, s, child, ctx, chunk)
		cancel()
	}
	for range 4 { // fill the free list
		read()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const reads = 64
	for range reads {
		read()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / reads; per > 4<<10 {
		t.Fatalf("%d bytes allocated per 32 KiB read, want the buffer reused", per)
	}
}

// A chunk is never reused while its request is still running, nor after the
// request timed out (its response may still be being marshalled), nor when
// the request had ended before the read returned.
func TestReadLentKeepsLiveChunks(t *testing.T) {
	s, child := lentIO(t)
	live := readLent(t, s, child, t.Context(), bytes.Repeat([]byte{'a'}, 1000))

	timed, stop := context.WithTimeout(t.Context(), time.Millisecond)
	defer stop()
	expired := readLent(t, s, child, timed, bytes.Repeat([]byte{'b'}, 1000))
	<-timed.Done()

	ended, cancel := context.WithCancel(t.Context())
	cancel()
	early := readLent(t, s, child, ended, bytes.Repeat([]byte{'c'}, 1000))

	for i := range 16 {
		ctx, cancel := context.WithCancel(t.Context())
		readLent(t, s, child, ctx, bytes.Repeat([]byte{byte('d' + i)}, 1000))
		cancel()
	}
	for _, c := range []struct {
		name string
		d    []byte
		b    byte
	}{{"live", live, 'a'}, {"timed out", expired, 'b'}, {"ended before the read", early, 'c'}} {
		if bytes.Count(c.d, []byte{c.b}) != len(c.d) {
			t.Errorf("%s chunk was overwritten by a later read", c.name)
		}
	}
}
