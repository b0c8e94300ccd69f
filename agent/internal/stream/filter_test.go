package stream

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// upper is a filter: lines of "ok <text>" pass as text, "end" ends the
// input, anything else is an error.
type upper struct{ closed bool }

func (u *upper) Write(p []byte) ([]byte, bool, error) {
	var out []byte
	for _, l := range strings.SplitAfter(string(p), "\n") {
		switch {
		case l == "":
		case l == "end\n":
			u.closed = true
			return out, true, nil
		case strings.HasPrefix(l, "ok "):
			out = append(out, strings.ToUpper(l[3:])...)
		default:
			return out, false, errors.New("bad line " + l)
		}
	}
	return out, false, nil
}

func (u *upper) Close() error {
	if !u.closed {
		return errors.New("closed early")
	}
	return nil
}

func TestFilteredStdin(t *testing.T) {
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var failed []error
	if err := s.FilterStdin(&upper{}, func(err error) { failed = append(failed, err) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("ok abc\nok def\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("end\n")); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(child.Stdin) // EOF only because the filter said so
	if err != nil || string(got) != "ABC\nDEF\n" {
		t.Fatalf("process read %q, %v", got, err)
	}
	if err := s.CloseStdin(); err != nil || len(failed) != 0 {
		t.Fatalf("close after the end: %v, failures %v", err, failed)
	}
	child.CloseChild()
}

func TestFilteredStdinFailure(t *testing.T) {
	for _, how := range []string{"bad write", "early close"} {
		t.Run(how, func(t *testing.T) {
			s, child, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			defer child.CloseChild()
			var failed []error
			if err := s.FilterStdin(&upper{}, func(err error) { failed = append(failed, err) }); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write([]byte("ok a\n")); err != nil {
				t.Fatal(err)
			}
			if how == "bad write" {
				_, err = s.Write([]byte("ok b\nrm -rf /\nok c\n"))
			} else {
				err = s.CloseStdin()
			}
			if err == nil || len(failed) != 1 || failed[0] != err {
				t.Fatalf("error %v, callbacks %v", err, failed)
			}
			if _, again := s.Write([]byte("ok d\n")); again != err || s.CloseStdin() != err || len(failed) != 1 {
				t.Fatalf("the session went on: %v", again)
			}
			// The process's stdin stays open: it got what came before
			// the error, and no end of file.
			s.stdinMu.Lock()
			open := s.stdin != nil
			s.stdinMu.Unlock()
			if !open {
				t.Fatal("stdin was closed: a cut input would read as a clean end")
			}
			s.closeStdinPipe()
			got, _ := io.ReadAll(child.Stdin)
			want := "A\n"
			if how == "bad write" {
				want = "A\nB\n"
			}
			if string(got) != want {
				t.Fatalf("process read %q, want %q", got, want)
			}
		})
	}
}

func TestFilterStdinRefusedLate(t *testing.T) {
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer child.CloseChild()
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.FilterStdin(&upper{}, nil); !errors.Is(err, errFilterLate) {
		t.Fatalf("FilterStdin after a write = %v", err)
	}
	tty, _, err := New(Options{Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	if err := tty.FilterStdin(&upper{}, nil); err == nil {
		t.Fatal("a terminal's input was filtered")
	}
}

func TestSealPreambleFirst(t *testing.T) {
	k := sealKey(t)
	s, child, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := child.Stdout.Write([]byte("before\n")); err != nil {
		t.Fatal(err)
	}
	child.CloseChild()
	sealStream(t, s, Stdout, k, SealOptions{Preamble: []byte("PREAMBLE\n")})
	var all []byte
	for {
		b, err := s.Read(Stdout, 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			break
		}
		all = append(all, b...)
	}
	rest, ok := bytes.CutPrefix(all, []byte("PREAMBLE\n"))
	if !ok {
		t.Fatalf("the preamble is not first: %q", all[:min(len(all), 40)])
	}
	if p, _ := open(t, k, rest); string(p) != "before\n" {
		t.Fatalf("recovered %q", p)
	}
}
