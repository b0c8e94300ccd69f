package stream

import (
	"bytes"
	"io"
	"testing"
	"time"
)

func readAll(t *testing.T, s *IO, w Which) []byte {
	t.Helper()
	var b bytes.Buffer
	for {
		d, err := s.Read(w, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) == 0 {
			return b.Bytes()
		}
		b.Write(d)
	}
}

func TestPipesAndEOF(t *testing.T) {
	s, child, err := New(Options{PipeSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write([]byte("in")); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(child.Stdin)
	if string(got) != "in" {
		t.Errorf("stdin %q", got)
	}
	if _, err := s.Write([]byte("x")); err != ErrStdinClosed {
		t.Errorf("write after close: %v", err)
	}
	child.Stdout.Write([]byte("out"))
	child.Stderr.Write([]byte("err"))
	child.CloseChild()
	if got := readAll(t, s, Stdout); string(got) != "out" {
		t.Errorf("stdout %q", got)
	}
	if got := readAll(t, s, Stderr); string(got) != "err" {
		t.Errorf("stderr %q", got)
	}
	if d, _ := s.Read(Stdout, 10); len(d) != 0 {
		t.Error("data after EOF")
	}
}

// A grandchild holding the write end must not keep reads blocked after the
// process is reaped: data written before still gets through, and a read
// blocked when the process is reaped ends within the drain window.
func TestDrainWindowAfterExit(t *testing.T) {
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer child.CloseChild() // the "grandchild" keeps every end open
	child.Stdout.Write([]byte("tail"))
	if d, err := s.Read(Stdout, 4096); err != nil || string(d) != "tail" {
		t.Fatalf("read %q, %v; want the tail", d, err)
	}
	parked := make(chan struct{}, 1)
	s.OnParking(func() {
		select {
		case parked <- struct{}{}:
		default:
		}
	})
	type result struct {
		d   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := s.Read(Stdout, 4096)
		done <- result{d, err}
	}()
	<-parked // the pipe is empty: this read blocks
	s.Exited()
	select {
	case r := <-done:
		if r.err != nil || len(r.d) != 0 {
			t.Errorf("blocked read ended with %q, %v; want EOF", r.d, r.err)
		}
	case <-time.After(10 * DrainWindow):
		t.Fatal("read still blocked after the drain window")
	}
}

// Discard mode keeps draining so the writer never blocks.
func TestDiscardDrains(t *testing.T) {
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Discard(Stdout)
	chunk := make([]byte, 1<<20)
	for range 8 { // far beyond a pipe's capacity
		if _, err := child.Stdout.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if d, _ := s.Read(Stdout, 10); len(d) != 0 {
		t.Error("discarded stream returned data")
	}
	child.CloseChild()
}

func TestTerminalWithoutMaster(t *testing.T) {
	s, _, err := New(Options{Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Resize(1, 1); !ErrNoTerminal(err) {
		t.Errorf("resize: %v", err)
	}
	if d, err := s.Read(Stderr, 10); err != nil || len(d) != 0 {
		t.Errorf("stderr of a terminal: %q %v", d, err)
	}
}

// BenchmarkRead measures ReadStdout's core: 32 KiB reads from a full pipe.
func BenchmarkRead(b *testing.B) {
	s, child, err := New(Options{PipeSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := child.Stdout.Write(buf); err != nil {
				return
			}
		}
	}()
	b.SetBytes(32 << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Read(Stdout, 32<<10); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	child.Stdout.Close()
}
