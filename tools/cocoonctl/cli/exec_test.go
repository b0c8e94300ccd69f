package cli

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

// fakeAgent plays the agent's side of an encrypted exec over pipes: it
// echoes each piece of stdin it opens, and edit may change its stdout
// lines as a host would.
func fakeAgent(t *testing.T, owner *ecdh.PublicKey, cin io.Reader, cout, cerr io.WriteCloser, edit func([]byte) []byte) {
	x, err := sealedlog.NewExecAgent(owner, "c/e1")
	if err != nil {
		t.Error(err)
		return
	}
	send := func(w io.Writer, b []byte) {
		if edit != nil && w == cout {
			b = edit(b)
		}
		_, _ = w.Write(b)
	}
	send(cout, x.Preamble)
	buf := make([]byte, 100)
	for {
		n, err := cin.Read(buf)
		plain, eof, serr := x.Stdin.Write(buf[:n])
		if serr != nil {
			t.Errorf("agent: %v", serr)
			break
		}
		if len(plain) > 0 {
			b, _ := x.Stdout.Write(append([]byte("got "), plain...))
			send(cout, append(b, x.Stdout.Flush()...))
			b, _ = x.Stderr.Write([]byte("seen\n"))
			send(cerr, b)
		}
		if eof || err != nil {
			break
		}
	}
	send(cout, x.Stdout.Close())
	send(cerr, x.Stderr.Close())
	cout.Close()
	cerr.Close()
}

func runFake(t *testing.T, input string, edit func([]byte) []byte) (string, string, error) {
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	go fakeAgent(t, eph.PublicKey(), inR, outW, errW, edit)
	var out, errOut bytes.Buffer
	err = execSession(eph, strings.NewReader(input), &out, &errOut, inW, outR, errR)
	inR.Close()
	outR.Close()
	errR.Close()
	return out.String(), errOut.String(), err
}

func TestExecSessionRelay(t *testing.T) {
	out, errOut, err := runFake(t, "hello\n", nil)
	if err != nil {
		t.Fatalf("%v (stderr %q)", err, errOut)
	}
	if out != "got hello\n" || errOut != "seen\n" {
		t.Fatalf("stdout %q, stderr %q", out, errOut)
	}
}

func TestExecSessionTamperedOutput(t *testing.T) {
	n := 0
	flip := func(b []byte) []byte {
		n++
		if n != 2 { // the first write after the preamble
			return b
		}
		b = bytes.Clone(b)
		i := bytes.LastIndex(b, []byte(sealedlog.RecordPrefix)) + len(sealedlog.RecordPrefix) + 30
		b[i] ^= 1
		return b
	}
	out, errOut, err := runFake(t, "hello\n", flip)
	if !errors.Is(err, sealedlog.ErrExecSession) || !strings.Contains(errOut, execMarkPrefix) {
		t.Fatalf("tampered output: %v, stderr %q", err, errOut)
	}
	if strings.Contains(out, "hello") {
		t.Fatalf("tampered output shown: %q", out)
	}
}
