package cli

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

// announcer makes what a fake agent announces for session x of the grant
// with this nonce (nil: nothing).
type announcer func(t *testing.T, x *sealedlog.ExecAgent, nonce string) []byte

// fakeAgent plays the agent's side of an encrypted exec over pipes: it
// announces the session, echoes each piece of stdin it opens, and edit
// may change its stdout lines as a host would. It reports whether any
// stdin reached it, and its own failure, on done.
func fakeAgent(ann []byte, x *sealedlog.ExecAgent, cin io.Reader, cout, cerr io.WriteCloser, edit func([]byte) []byte, done chan<- agentResult) {
	var res agentResult
	defer func() { done <- res }()
	send := func(w io.Writer, b []byte) {
		if edit != nil && w == cout {
			b = edit(b)
		}
		_, _ = w.Write(b)
	}
	send(cout, append(ann, x.Preamble...))
	buf := make([]byte, 100)
	for {
		n, err := cin.Read(buf)
		if n > 0 {
			res.gotInput = true
		}
		plain, eof, serr := x.Stdin.Write(buf[:n])
		if serr != nil {
			res.err = serr
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

type agentResult struct {
	gotInput bool
	err      error
}

type fakeRun struct {
	out, errOut string
	err         error
	agent       agentResult
}

// runFake runs a session against a fake agent (with o.key as the grant's
// key, a fresh one when nil).
func runFake(t *testing.T, input string, announce announcer, edit func([]byte) []byte, o sessionOptions) fakeRun {
	t.Helper()
	if o.key == nil {
		o.key = newEph(t)
	}
	eph := o.key
	x, err := sealedlog.NewExecAgent(eph.PublicKey(), "c/e1")
	if err != nil {
		t.Fatal(err)
	}
	o.nonce = execgrant.NewNonce()
	var ann []byte
	if announce != nil {
		ann = announce(t, x, o.nonce)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	done := make(chan agentResult, 1)
	go fakeAgent(ann, x, inR, outW, errW, edit, done)
	var out, errOut bytes.Buffer
	err = execSession(o, strings.NewReader(input), &out, &errOut, inW, outR, errR)
	inR.Close()
	outR.Close()
	errR.Close()
	return fakeRun{out: out.String(), errOut: errOut.String(), err: err, agent: <-done}
}

// genuine announces the session as the agent does.
func genuine(a attest.Attester) announcer {
	return func(t *testing.T, x *sealedlog.ExecAgent, nonce string) []byte {
		b, err := execgrant.Announce(context.Background(), a, nonce, x)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func TestExecSessionRelay(t *testing.T) {
	dir := t.TempDir()
	r := runFake(t, "hello\n", genuine(kbstest.SNPAttester(t)), nil, sessionOptions{evidenceOut: filepath.Join(dir, "ev.json")})
	if r.err != nil || r.agent.err != nil {
		t.Fatalf("%v, agent %v (stderr %q)", r.err, r.agent.err, r.errOut)
	}
	if r.out != "got hello\n" || !strings.HasSuffix(r.errOut, "seen\n") {
		t.Fatalf("stdout %q, stderr %q", r.out, r.errOut)
	}
	if !strings.Contains(r.errOut, execMarkPrefix+"the agent's session is bound to snp evidence") ||
		!strings.Contains(r.errOut, "signature") {
		t.Fatalf("no note of what was verified: %q", r.errOut)
	}
	ev, err := os.ReadFile(filepath.Join(dir, "ev.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.ParseSNPEvidence(ev); err != nil {
		t.Fatalf("saved evidence: %v", err)
	}
}

func TestExecSessionTamperedOutput(t *testing.T) {
	n := 0
	flip := func(b []byte) []byte {
		n++
		if n != 2 { // the first write after the announcement and preamble
			return b
		}
		b = bytes.Clone(b)
		i := bytes.LastIndex(b, []byte(sealedlog.RecordPrefix)) + len(sealedlog.RecordPrefix) + 30
		b[i] ^= 1
		return b
	}
	r := runFake(t, "hello\n", genuine(kbstest.SNPAttester(t)), flip, sessionOptions{})
	if !errors.Is(r.err, sealedlog.ErrExecSession) || !strings.Contains(r.errOut, execMarkPrefix) {
		t.Fatalf("tampered output: %v, stderr %q", r.err, r.errOut)
	}
	if strings.Contains(r.out, "hello") {
		t.Fatalf("tampered output shown: %q", r.out)
	}
}

// A host that answers cocoon-exec itself, or edits the announcement, is
// refused before anything typed is sent and before any output is shown.
func TestExecRefusesUnattestedSession(t *testing.T) {
	snp := kbstest.SNPAttester(t)
	eph := newEph(t)
	for _, tc := range []struct {
		name     string
		announce announcer
		o        sessionOptions
		want     error
		msg      string
	}{
		{"missing evidence", nil, sessionOptions{}, execgrant.ErrNoEvidence, "no attestation evidence"},
		{"evidence for another session's key", func(t *testing.T, _ *sealedlog.ExecAgent, nonce string) []byte {
			// Genuine evidence, same grant, but for the streams and stdin
			// key of a session the agent really ran; the host shows its
			// own key stream.
			other, err := sealedlog.NewExecAgent(eph.PublicKey(), "c/e1")
			if err != nil {
				t.Fatal(err)
			}
			return genuine(snp)(t, other, nonce)
		}, sessionOptions{key: eph}, execgrant.ErrUnboundStream, "not bound to the agent's evidence"},
		{"evidence with another nonce", func(t *testing.T, x *sealedlog.ExecAgent, _ string) []byte {
			return genuine(snp)(t, x, execgrant.NewNonce())
		}, sessionOptions{}, execgrant.ErrEvidenceMismatch, "another session or grant"},
		{"sample evidence", genuine(attest.Sample{}), sessionOptions{}, execgrant.ErrSampleEvidence, "--insecure-sample-evidence"},
		{"malformed announcement", func(*testing.T, *sealedlog.ExecAgent, string) []byte {
			return []byte(execgrant.AnnouncementPrefix + "e30\n")
		}, sessionOptions{}, execgrant.ErrBadAnnouncement, "malformed"},
		{"sample evidence for another nonce, allowed", func(t *testing.T, x *sealedlog.ExecAgent, _ string) []byte {
			return genuine(attest.Sample{})(t, x, execgrant.NewNonce())
		}, sessionOptions{allowSample: true}, execgrant.ErrEvidenceMismatch, "another session or grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const canary = "CANARY-typed-7f3a"
			r := runFake(t, canary+"\n", tc.announce, nil, tc.o)
			if !errors.Is(r.err, tc.want) {
				t.Fatalf("error %v, want %v (stderr %q)", r.err, tc.want, r.errOut)
			}
			if !strings.Contains(r.errOut, execMarkPrefix+"refusing the session: ") || !strings.Contains(r.errOut, tc.msg) {
				t.Fatalf("message %q lacks %q", r.errOut, tc.msg)
			}
			if r.agent.gotInput || r.out != "" || strings.Contains(r.errOut, "seen") {
				t.Fatalf("input sent (%v) or output shown: stdout %q, stderr %q", r.agent.gotInput, r.out, r.errOut)
			}
		})
	}
}

// A stream the evidence does not name, added by the host in the middle of
// a genuine session, ends it.
func TestExecRefusesStreamAddedLater(t *testing.T) {
	eph := newEph(t)
	n := 0
	swap := func(b []byte) []byte {
		n++
		if n != 2 {
			return b
		}
		// The host makes a stdout stream of its own (it knows the grant's
		// public key) and drops the agent's.
		forged, err := sealedlog.NewExecAgent(eph.PublicKey(), "c/e1")
		if err != nil {
			t.Error(err)
			return b
		}
		out, _ := forged.Stdout.Write([]byte("forged\n"))
		return out
	}
	r := runFake(t, "hello\n", genuine(kbstest.SNPAttester(t)), swap, sessionOptions{key: eph})
	if !errors.Is(r.err, execgrant.ErrUnboundStream) || strings.Contains(r.out, "forged") {
		t.Fatalf("forged stream: %v, stdout %q, stderr %q", r.err, r.out, r.errOut)
	}
}

func TestExecSampleEvidenceAllowed(t *testing.T) {
	r := runFake(t, "hello\n", genuine(attest.Sample{}), nil, sessionOptions{allowSample: true})
	if r.err != nil || r.out != "got hello\n" {
		t.Fatalf("%v: stdout %q, stderr %q", r.err, r.out, r.errOut)
	}
	if !strings.Contains(r.errOut, execMarkPrefix+"WARNING: sample evidence") {
		t.Fatalf("no warning: %q", r.errOut)
	}
}

func newEph(t *testing.T) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
