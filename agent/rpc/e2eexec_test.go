package rpc_test

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/internal/testutil/testgrant"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// e2eSession is the owner's side of an encrypted exec driven through the
// agent API as the runtime would relay it: every payload the host sees is
// checked for the canary.
type e2eSession struct {
	t        *testing.T
	a        *observedAgent
	cid, eid string
	canary   string
	owner    *sealedlog.ExecOwner
	chunks   chan []byte // stdout payloads, closed at EOF
	stderr   chan []byte // all of stderr, at EOF (buffered: never blocks)
	pending  []byte
	stdout   []byte // plaintext recovered
	errOut   []byte
	in       *sealedlog.Sealer
}

// startE2E signs a grant carrying a fresh ephemeral key, runs it and reads
// the agent's stdin key from the first output.
func startE2E(t *testing.T, a *observedAgent, o testgrant.Owner, eid, canary string, argv ...string) *e2eSession {
	t.Helper()
	tok, _, eph := testgrant.Sealed(t, o.Exec, argv...)
	ctx := ctxT(t)
	if _, err := a.ExecProcess(ctx, &agentpb.ExecProcessRequest{ContainerId: "app", ExecId: eid,
		Process: &agentpb.Process{Args: []string{execgrant.Command, tok}, Env: []string{"PATH=/bin"}, Cwd: "/"}}); err != nil {
		t.Fatalf("encrypted exec: %v", err)
	}
	x, err := sealedlog.NewExecOwner(eph)
	if err != nil {
		t.Fatal(err)
	}
	s := &e2eSession{t: t, a: a, cid: "app", eid: eid, canary: canary, owner: x, chunks: make(chan []byte, 64), stderr: make(chan []byte, 1)}
	// The readers report through channels, never through t: a test that
	// stops early must not be failed from a goroutine afterwards.
	go func() {
		defer close(s.chunks)
		for {
			r, err := a.ReadStdout(ctx, &agentpb.ReadStreamRequest{ContainerId: "app", ExecId: eid, Len: 32 << 10})
			if err != nil {
				s.chunks <- []byte("ReadStdout failed: " + err.Error() + "\n")
				return
			}
			if bytes.Contains(r.Data, []byte(canary)) {
				s.chunks <- []byte("CANARY LEAKED in a ReadStdout payload\n")
			}
			if len(r.Data) == 0 {
				return
			}
			s.chunks <- r.Data
		}
	}()
	go func() {
		var all []byte
		for {
			r, err := a.ReadStderr(ctx, &agentpb.ReadStreamRequest{ContainerId: "app", ExecId: eid, Len: 32 << 10})
			switch {
			case err != nil:
				all = append(all, "\nReadStderr failed: "+err.Error()+"\n"...)
			case bytes.Contains(r.Data, []byte(canary)):
				all = append(all, "\nCANARY LEAKED in a ReadStderr payload\n"...)
			}
			if err != nil || len(r.Data) == 0 {
				s.stderr <- all
				return
			}
			all = append(all, r.Data...)
		}
	}()
	for s.owner.AgentKey() == nil {
		if !s.next() {
			t.Fatal("stdout ended before the agent's stdin key")
		}
	}
	if s.in, err = sealedlog.NewStdinSealer(s.owner.AgentKey()); err != nil {
		t.Fatal(err)
	}
	return s
}

// next opens the next stdout payload; false at EOF.
func (s *e2eSession) next() bool {
	b, ok := <-s.chunks
	if !ok {
		return false
	}
	s.pending = append(s.pending, b...)
	for {
		i := bytes.IndexByte(s.pending, '\n')
		if i < 0 {
			return true
		}
		s.line(s.pending[:i])
		s.pending = s.pending[i+1:]
	}
}

func (s *e2eSession) line(l []byte) {
	out, unsealed, err := s.owner.Line(l)
	if err != nil || unsealed {
		s.t.Fatalf("output line %q: %v (unsealed %v)", l[:min(len(l), 200)], err, unsealed)
	}
	for _, o := range out {
		if o.Stderr {
			s.errOut = append(s.errOut, o.Data...)
		} else {
			s.stdout = append(s.stdout, o.Data...)
		}
	}
}

// write sends sealed stdin through WriteStdin in small pieces.
func (s *e2eSession) write(sealed []byte) error {
	for len(sealed) > 0 {
		n := min(len(sealed), 333)
		if bytes.Contains(sealed[:n], []byte(s.canary)) {
			s.t.Fatal("the canary is in a WriteStdin payload")
		}
		if _, err := s.a.WriteStdin(ctxT(s.t), &agentpb.WriteStreamRequest{ContainerId: s.cid, ExecId: s.eid, Data: sealed[:n]}); err != nil {
			return err
		}
		sealed = sealed[n:]
	}
	return nil
}

func (s *e2eSession) seal(p string) []byte {
	b, err := s.in.Write([]byte(p))
	if err != nil {
		s.t.Fatal(err)
	}
	return append(b, s.in.Flush()...)
}

// finish reads the output to its end and opens stderr.
func (s *e2eSession) finish() {
	for s.next() {
	}
	for _, l := range bytes.Split(<-s.stderr, []byte("\n")) {
		if len(l) > 0 {
			s.line(l)
		}
	}
}

func TestEncryptedExecThroughAPI(t *testing.T) {
	o := testgrant.NewOwner(t)
	a := startObserved(t, o, "")
	a.runContainer(t, "app", k8sSpec(a.rootfs(t, "app"), "app", "sleep", "1000"))
	const canary = "CANARY-e2e-9b41-typed-by-the-owner"

	s := startE2E(t, a, o, "e2e", canary, "sh", "-c", `while read -r l; do echo "got $l"; echo "err $l" >&2; done; echo done`)
	var want, wantErr strings.Builder
	for i := range 50 {
		line := canary + strings.Repeat("x", i*37) // no trailing blank: read strips it
		if err := s.write(s.seal(line + "\n")); err != nil {
			t.Fatalf("WriteStdin: %v", err)
		}
		want.WriteString("got " + line + "\n")
		wantErr.WriteString("err " + line + "\n")
	}
	if err := s.write(s.in.Close()); err != nil {
		t.Fatalf("final stdin record: %v", err)
	}
	must(t)(a.CloseStdin(ctxT(t), &agentpb.CloseStdinRequest{ContainerId: "app", ExecId: "e2e"}))
	s.finish()
	want.WriteString("done\n")
	if string(s.stdout) != want.String() || string(s.errOut) != wantErr.String() {
		t.Fatalf("owner recovered %d/%d bytes of stdout (ends %q), %d/%d of stderr (ends %q)", len(s.stdout), want.Len(),
			tail(s.stdout), len(s.errOut), wantErr.Len(), tail(s.errOut))
	}
	if err := s.owner.End(); err != nil {
		t.Fatalf("output not complete: %v", err)
	}
	if st := a.wait(t, "app", "e2e"); st != 0 {
		t.Fatalf("encrypted exec exited %d", st)
	}

	// The host changing stdin ends the session: the write is refused,
	// the owner is told in the sealed stderr, the command is killed and
	// never sees the input.
	for name, attack := range map[string]func(s *e2eSession) error{
		"tampered": func(s *e2eSession) error {
			b := s.seal("echo " + canary + "\n")
			i := bytes.LastIndex(b, []byte(sealedlog.RecordPrefix)) + len(sealedlog.RecordPrefix) + 40
			b[i] ^= 'A' ^ 'B'
			return s.write(b)
		},
		"replayed": func(s *e2eSession) error {
			b := s.seal("echo " + canary + "\n")
			if err := s.write(b); err != nil {
				return err
			}
			return s.write(b[bytes.LastIndex(b, []byte(sealedlog.RecordPrefix)):])
		},
		"cut": func(s *e2eSession) error {
			if err := s.write(s.seal("echo " + canary + "\n")); err != nil {
				return err
			}
			_, err := a.CloseStdin(ctxT(t), &agentpb.CloseStdinRequest{ContainerId: "app", ExecId: s.eid})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := startE2E(t, a, o, "e2e-"+name, canary, "sh", "-c", `while read -r l; do echo "ran $l"; done`)
			err := attack(s)
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "encrypted exec session") {
				t.Fatalf("attack answered %v, want PERMISSION_DENIED ending the session", err)
			}
			s.finish() // to the end of output first, as the runtime does: WaitProcess forgets the exec
			if st := a.wait(t, "app", s.eid); st != 137 {
				t.Fatalf("exec exited %d, want 137 (killed)", st)
			}
			if !strings.Contains(string(s.errOut), "the session is closed") {
				t.Fatalf("the owner was not told: stderr %q, stdout %q", s.errOut, s.stdout)
			}
			if name == "tampered" && len(s.stdout) > 0 {
				t.Fatalf("the command ran tampered input: %q", s.stdout)
			}
		})
	}

	// A terminal is refused for an encrypted grant rather than run in the
	// clear.
	tok, _, _ := testgrant.Sealed(t, o.Exec, "sh")
	_, err := a.ExecProcess(ctxT(t), &agentpb.ExecProcessRequest{ContainerId: "app", ExecId: "tty",
		Process: &agentpb.Process{Args: []string{execgrant.Command, tok}, Terminal: true, Cwd: "/"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "without a terminal") {
		t.Fatalf("encrypted grant with a terminal: %v", err)
	}

	must(t)(a.RemoveContainer(ctxT(t), &agentpb.RemoveContainerRequest{ContainerId: "app"}))
	if logs := a.logs.Bytes(); len(logs) == 0 || bytes.Contains(logs, []byte(canary)) {
		t.Fatalf("agent logs: %d bytes, canary present %v", len(logs), bytes.Contains(logs, []byte(canary)))
	}
}

func tail(b []byte) []byte { return b[max(0, len(b)-80):] }
