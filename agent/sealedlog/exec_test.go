package sealedlog

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"strings"
	"testing"
)

// session runs the handshake: the owner reads the agent's preamble and
// returns a sealer for stdin.
func session(t testing.TB) (*ExecAgent, *ExecOwner, *Sealer) {
	t.Helper()
	ownerKey := newKey(t, ecdh.X25519())
	agent, err := NewExecAgent(ownerKey.PublicKey(), "ctr/exec1")
	if err != nil {
		t.Fatal(err)
	}
	owner, err := NewExecOwner(ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines(agent.Preamble) {
		if out, unsealed, err := owner.Line(l); err != nil || unsealed || len(out) > 0 {
			t.Fatalf("preamble: %v %v %+v", err, unsealed, out)
		}
	}
	if owner.AgentKey() == nil {
		t.Fatal("no agent key after the preamble")
	}
	in, err := NewStdinSealer(owner.AgentKey())
	if err != nil {
		t.Fatal(err)
	}
	return agent, owner, in
}

// sealIn seals chunks as cocoonctl does (write, flush) and closes.
func sealIn(t testing.TB, in *Sealer, chunks ...string) [][]byte {
	t.Helper()
	var out []byte
	for _, c := range chunks {
		b, err := in.Write([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		out = append(append(out, b...), in.Flush()...)
	}
	return lines(append(out, in.Close()...))
}

func TestExecSessionRoundTrip(t *testing.T) {
	agent, owner, in := session(t)
	sealed := bytes.Join(sealIn(t, in, "echo one\n", "partial", " line\n", "y"), nil)
	// The host relays stdin in chunks that split lines anywhere.
	var plain []byte
	eof := false
	for i := 0; i < len(sealed); i += 7 {
		p, e, err := agent.Stdin.Write(sealed[i:min(i+7, len(sealed))])
		if err != nil {
			t.Fatal(err)
		}
		plain, eof = append(plain, p...), e
	}
	if want := "echo one\npartial line\ny"; string(plain) != want || !eof {
		t.Fatalf("agent read %q (eof %v), want %q", plain, eof, want)
	}
	if err := agent.Stdin.Close(); err != nil {
		t.Fatalf("close after the final record: %v", err)
	}

	// Output the other way.
	outLines, _ := agent.Stdout.Write([]byte("one\n"))
	outLines = append(outLines, agent.Stdout.Close()...)
	errLines, _ := agent.Stderr.Write([]byte("warn\n"))
	errLines = append(errLines, agent.Stderr.Close()...)
	var stdout, stderr []byte
	for _, l := range append(lines(outLines), lines(errLines)...) {
		out, _, err := owner.Line(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out {
			if o.Stderr {
				stderr = append(stderr, o.Data...)
			} else {
				stdout = append(stdout, o.Data...)
			}
		}
	}
	if string(stdout) != "one\n" || string(stderr) != "warn\n" {
		t.Fatalf("owner read %q / %q", stdout, stderr)
	}
	if err := owner.End(); err != nil {
		t.Fatal(err)
	}
}

// TestExecStdinRefusals: every change the host can make to stdin ends the
// session with an error naming it, and no plaintext follows.
func TestExecStdinRefusals(t *testing.T) {
	cases := map[string]struct {
		edit func(ls [][]byte) [][]byte
		want string
	}{
		"tampered": {func(ls [][]byte) [][]byte {
			// Another valid base64url character at the same place: the
			// line still decodes, but its bytes are not what was sealed.
			l := bytes.Clone(ls[2])
			if i := len(RecordPrefix) + 30; l[i] == 'A' {
				l[i] = 'B'
			} else {
				l[i] = 'A'
			}
			ls[2] = l
			return ls
		}, "does not authenticate"},
		"reordered": {func(ls [][]byte) [][]byte { ls[1], ls[2] = ls[2], ls[1]; return ls }, "missing"},
		"replayed":  {func(ls [][]byte) [][]byte { return append(ls[:3:3], append([][]byte{ls[2]}, ls[3:]...)...) }, "replayed"},
		"dropped":   {func(ls [][]byte) [][]byte { return append(ls[:2:2], ls[3:]...) }, "missing"},
		"unsealed": {func(ls [][]byte) [][]byte {
			return append(ls[:2:2], append([][]byte{[]byte("rm -rf /\n")}, ls[2:]...)...)
		}, "not sealed"},
		"prefixed":  {func(ls [][]byte) [][]byte { ls[2] = append([]byte("x"), ls[2]...); return ls }, "not sealed"},
		"after end": {func(ls [][]byte) [][]byte { return append(ls, ls[1]) }, "after the owner's final record"},
		"other key": {func(ls [][]byte) [][]byte {
			other := newKey(t, ecdh.X25519())
			s, _ := NewStdinSealer(other.PublicKey())
			return append(ls[:1:1], sealIn(t, s, "id\n")...)
		}, "rejected"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			agent, _, in := session(t)
			ls := sealIn(t, in, "a\n", "b\n", "c\n")
			var err error
			var got []byte
			for _, l := range tc.edit(ls) {
				var p []byte
				if p, _, err = agent.Stdin.Write(l); err != nil {
					got = append(got, p...)
					break
				}
				got = append(got, p...)
			}
			if !errors.Is(err, ErrExecSession) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q (read %q)", err, tc.want, got)
			}
			if _, _, again := agent.Stdin.Write([]byte("more\n")); !errors.Is(again, ErrExecSession) {
				t.Fatalf("the session went on after %v: %v", err, again)
			}
			if bytes.Contains(got, []byte("rm -rf")) {
				t.Fatal("unsealed input reached the command")
			}
		})
	}
}

func TestExecStdinCutByHost(t *testing.T) {
	agent, _, in := session(t)
	ls := sealIn(t, in, "a\n", "b\n")
	for _, l := range ls[:len(ls)-1] { // everything but the final record
		if _, _, err := agent.Stdin.Write(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := agent.Stdin.Close(); !errors.Is(err, ErrExecSession) || !strings.Contains(err.Error(), "before the owner's final record") {
		t.Fatalf("Close = %v", err)
	}
	long := bytes.Repeat([]byte("c"), maxLine+1)
	agent2, _, _ := session(t)
	if _, _, err := agent2.Stdin.Write(append([]byte(linePrefix), long...)); !errors.Is(err, ErrExecSession) {
		t.Fatalf("an endless line: %v", err)
	}
}

// TestExecOwnerRefusesForeignStreams: a stream the host fabricates to the
// grant's public key is not mixed into the session.
func TestExecOwnerRefusesForeignStreams(t *testing.T) {
	for name, label := range map[string]string{
		"second stdout":  "ctr/exec1/stdout",
		"another exec":   "ctr/exec2/stderr",
		"not an exec":    "ctr/stdout-ish",
		"second key too": "ctr/exec1/stdin-key",
	} {
		t.Run(name, func(t *testing.T) {
			ownerKey := newKey(t, ecdh.X25519())
			agent, _ := NewExecAgent(ownerKey.PublicKey(), "ctr/exec1")
			owner, _ := NewExecOwner(ownerKey)
			first, _ := agent.Stdout.Write([]byte("x\n"))
			forger, _ := NewSealer(ownerKey.PublicKey(), label, Options{})
			forged, _ := forger.Write([]byte("y\n"))
			var err error
			for _, l := range lines(append(append(agent.Preamble, first...), forged...)) {
				if _, _, err = owner.Line(l); err != nil {
					break
				}
			}
			if !errors.Is(err, ErrExecSession) {
				t.Fatalf("forged stream %q accepted: %v", label, err)
			}
		})
	}
}

func FuzzStdinOpener(f *testing.F) {
	f.Add([]byte(RecordPrefix+"AAAA\n"), []byte(HeaderPrefix+"\n"))
	f.Add([]byte("plain\n"), []byte(""))
	f.Add(bytes.Repeat([]byte("x"), 100), []byte("\r\n"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		// A fresh key per input: nobody but its holder can seal to it, so
		// nothing a fuzzer writes may come out as plaintext.
		s, err := newStdinOpener(newKey(t, ecdh.X25519()))
		if err != nil {
			t.Fatal(err)
		}
		for _, chunk := range [][]byte{a, b} {
			p, _, err := s.Write(chunk)
			if len(p) > 0 {
				t.Fatalf("plaintext from nowhere: %q", p)
			}
			if err != nil && !errors.Is(err, ErrExecSession) {
				t.Fatalf("unclassified error %v", err)
			}
		}
		_ = s.Close()
	})
}
