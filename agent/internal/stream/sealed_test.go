package stream

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

func sealKey(t *testing.T) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sealStream(t *testing.T, s *IO, w Which, k *ecdh.PrivateKey, o SealOptions) {
	t.Helper()
	sl, err := sealedlog.NewSealer(k.PublicKey(), "c/"+w.String(), sealedlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seal(w, sl, o); err != nil {
		t.Fatal(err)
	}
}

// open returns the single stream's plaintext and the marks the owner's
// tool would print, but NotAttested: stream does not attest (the sandbox
// does, before it seals; agent/internal/sandbox tests it).
func open(t *testing.T, k *ecdh.PrivateKey, sealed []byte) ([]byte, []sealedlog.Event) {
	t.Helper()
	plain, all, err := sealedlog.ReadAll(k, sealed)
	if err != nil {
		t.Fatal(err)
	}
	var marks []sealedlog.Event
	for _, m := range all {
		if m.Kind != sealedlog.NotAttested {
			marks = append(marks, m)
		}
	}
	if len(plain) > 1 {
		t.Fatalf("%d streams in one", len(plain))
	}
	for _, p := range plain {
		return p, marks
	}
	return nil, marks
}

func TestSealedRoundTrip(t *testing.T) {
	k := sealKey(t)
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sealStream(t, s, Stdout, k, SealOptions{})
	const canary = "CANARY-7d1e-sealed"
	var want bytes.Buffer
	for i := range 3000 {
		fmt.Fprintf(&want, "line %d %s\n", i, canary)
	}
	want.WriteString("no newline at the end")
	go func() {
		child.Stdout.Write(want.Bytes())
		child.CloseChild()
	}()
	got := readAll(t, s, Stdout)
	if bytes.Contains(got, []byte(canary)) || bytes.Contains(got, []byte("line 1")) {
		t.Fatal("plaintext in sealed output")
	}
	plain, marks := open(t, k, got)
	if !bytes.Equal(plain, want.Bytes()) {
		t.Fatalf("recovered %d bytes, want %d", len(plain), want.Len())
	}
	for _, m := range marks {
		if m.Problem() || m.Kind == sealedlog.Unsealed {
			t.Errorf("mark %+v", m)
		}
	}
	if marks[len(marks)-1].Kind != sealedlog.Closed {
		t.Errorf("last mark %+v, want the end of the stream", marks[len(marks)-1])
	}
}

// With nobody reading, the writer never blocks: the queue drops sealed
// lines, and the owner sees where.
func TestSealedNoReaderNeverBlocks(t *testing.T) {
	k := sealKey(t)
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sealStream(t, s, Stdout, k, SealOptions{Queue: 256 << 10})
	line := bytes.Repeat([]byte("x"), 1023)
	line = append(line, '\n')
	writeUnread(t, child, line, 64<<10) // 64 MiB
	if s.Dropped(Stdout) == 0 {
		t.Fatal("64 MiB through a 256 KiB queue dropped nothing")
	}
	got := readAll(t, s, Stdout)
	plain, marks := open(t, k, got)
	missing := false
	for _, m := range marks {
		missing = missing || m.Kind == sealedlog.Missing
		if m.Kind == sealedlog.Rejected || m.Kind == sealedlog.Unsealed {
			t.Errorf("mark %+v", m)
		}
	}
	if !missing || marks[len(marks)-1].Kind != sealedlog.Closed {
		t.Fatalf("marks %v: want records missing and the end of the stream", marks)
	}
	if len(plain) == 0 || !bytes.HasPrefix(plain, line) {
		t.Fatalf("recovered %d bytes", len(plain))
	}
}

// A partial line shows after FlushAfter while the process still runs.
func TestSealedPartialLineFlushed(t *testing.T) {
	k := sealKey(t)
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer child.CloseChild()
	sealStream(t, s, Stdout, k, SealOptions{FlushAfter: time.Millisecond})
	child.Stdout.Write([]byte("password: "))
	var got []byte
	for !bytes.Contains(got, []byte("cocoon-sealed:v1:d:")) {
		d, err := s.Read(Stdout, 4096)
		if err != nil || len(d) == 0 {
			t.Fatalf("read %q %v", d, err)
		}
		got = append(got, d...)
	}
	plain, _ := open(t, k, got)
	if string(plain) != "password: " {
		t.Fatalf("recovered %q", plain)
	}
}

func TestSealAfterReadRefused(t *testing.T) {
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	child.Stdout.Write([]byte("x"))
	if d, _ := s.Read(Stdout, 1); string(d) != "x" {
		t.Fatalf("read %q", d)
	}
	sl, err := sealedlog.NewSealer(sealKey(t).PublicKey(), "c/stdout", sealedlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seal(Stdout, sl, SealOptions{}); err == nil {
		t.Fatal("sealed a stream already read in the clear")
	}
	child.CloseChild()
}

// A refused read discards a sealed stream too: EOF to the reader, the
// writer keeps going.
func TestSealedDiscard(t *testing.T) {
	k := sealKey(t)
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sealStream(t, s, Stdout, k, SealOptions{Queue: 64 << 10})
	s.Discard(Stdout)
	done := make(chan struct{})
	go func() {
		for range 16 << 10 {
			child.Stdout.Write(bytes.Repeat([]byte("y"), 1024))
		}
		child.CloseChild()
		close(done)
	}()
	if d, err := s.Read(Stdout, 4096); len(d) != 0 || err != nil {
		t.Fatalf("read after discard: %d bytes, %v", len(d), err)
	}
	<-done
}

// countingSealer counts the plaintext bytes it is asked to seal.
type countingSealer struct {
	*sealedlog.Sealer
	sealed atomic.Int64
}

func (c *countingSealer) Write(p []byte) ([]byte, error) {
	c.sealed.Add(int64(len(p)))
	return c.Sealer.Write(p)
}

func (c *countingSealer) Append(out, p []byte) ([]byte, error) {
	c.sealed.Add(int64(len(p)))
	return c.Sealer.Append(out, p)
}

// With nobody reading, the pump seals only what fits in the queue and
// drops the rest unsealed: a reader that falls behind costs the agent a
// pipe read per chunk, not the encryption of output nobody will get.
func TestSealedPumpSealsOnlyWhatFits(t *testing.T) {
	k := sealKey(t)
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sl, err := sealedlog.NewSealer(k.PublicKey(), "c/stdout", sealedlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingSealer{Sealer: sl}
	const queue = 256 << 10
	if err := s.Seal(Stdout, cs, SealOptions{Queue: queue}); err != nil {
		t.Fatal(err)
	}
	line := append(bytes.Repeat([]byte("z"), 99), '\n')
	const total = 16 << 20
	for range total / len(line) {
		if _, err := child.Stdout.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	child.CloseChild()
	got := readAll(t, s, Stdout)
	if n := cs.sealed.Load(); n > 2*queue {
		t.Fatalf("sealed %d bytes of plaintext for a %d-byte queue nobody read", n, queue)
	}
	if d := s.Dropped(Stdout); d < total-2*queue {
		t.Fatalf("dropped %d bytes of %d", d, total)
	}
	plain, marks := open(t, k, got)
	missing := false
	for _, m := range marks {
		missing = missing || m.Kind == sealedlog.Missing
		if m.Kind == sealedlog.Rejected || m.Kind == sealedlog.Unsealed {
			t.Errorf("mark %+v", m)
		}
	}
	if !missing || marks[len(marks)-1].Kind != sealedlog.Closed || !bytes.HasPrefix(plain, line) {
		t.Fatalf("recovered %d bytes, marks %v: want the start, records missing and the end", len(plain), marks)
	}
}

// An attested stream keeps the pump's guarantee: the attestation rides
// with the header (before the first record, never per record), a writer
// with no reader never blocks, and what the reader gets afterwards opens
// under RequireEvidence, every header copy followed by its attestation.
// The sample attester stands in for a TEE.
func TestSealedAttestedNoReader(t *testing.T) {
	k := sealKey(t)
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sl, err := sealedlog.NewSealer(k.PublicKey(), "c/stdout", sealedlog.Options{HeaderEvery: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := sealedlog.Attest(context.Background(), attest.Sample{}, sl); err != nil {
		t.Fatal(err)
	}
	if err := s.Seal(Stdout, sl, SealOptions{Queue: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	line := append(bytes.Repeat([]byte("y"), 1023), '\n')
	writeUnread(t, child, line, 8<<10) // 8 MiB
	got := readAll(t, s, Stdout)
	ls := bytes.Split(bytes.TrimSuffix(got, []byte("\n")), []byte("\n"))
	for i, l := range ls {
		if bytes.HasPrefix(l, []byte(sealedlog.HeaderPrefix)) && (i+1 == len(ls) || !bytes.HasPrefix(ls[i+1], []byte(sealedlog.AttestPrefix))) {
			t.Fatalf("header at line %d without its attestation", i)
		}
	}
	o, err := sealedlog.NewOpenerWith(k, sealedlog.OpenerOptions{RequireEvidence: true, AllowSample: true})
	if err != nil {
		t.Fatal(err)
	}
	var plain []byte
	attested, closed := false, false
	for _, l := range ls {
		for _, e := range o.Line(l) {
			plain = append(plain, e.Data...)
			attested = attested || e.Kind == sealedlog.Attested
			closed = closed || e.Kind == sealedlog.Closed
			if e.Kind == sealedlog.Rejected || e.Kind == sealedlog.Unsealed {
				t.Fatalf("event %+v", e)
			}
		}
	}
	if !attested || !closed || !bytes.HasPrefix(plain, line) || len(o.End()) != 0 {
		t.Fatalf("attested %v, closed %v, %d bytes", attested, closed, len(plain))
	}
}

// writeUnread writes line n times to the child's stdout with nobody
// reading, then closes the child's ends; the writer must never block.
func writeUnread(t *testing.T, child Child, line []byte, n int) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for range n {
			if _, err := child.Stdout.Write(line); err != nil {
				done <- err
				return
			}
		}
		child.CloseChild()
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the writer blocked with no reader")
	}
}
