package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/internal/testutil/testgrant"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

// payload is one ReadStdout/ReadStderr answer as the host receives it.
type payload struct {
	data []byte
	err  error
}

// relayStream reads one stream of an exec as the runtime relays it, until
// end of stream or an error, and hands every payload over unopened. It
// reports through the channel only, never through t: the test may have
// stopped before the stream ends.
func relayStream(c *client.Client, cid, eid string, stderr bool) <-chan payload {
	ch := make(chan payload, 64)
	go func() {
		defer close(ch)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for {
			req := &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: eid, Len: 32 << 10}
			var r *agentpb.ReadStreamResponse
			var err error
			if stderr {
				r, err = c.Agent.ReadStderr(ctx, req)
			} else {
				r, err = c.Agent.ReadStdout(ctx, req)
			}
			if err != nil {
				ch <- payload{err: err}
				return
			}
			if len(r.Data) == 0 {
				return
			}
			ch <- payload{data: r.Data}
		}
	}()
	return ch
}

// hostOutput is everything the host relayed from one stream, checked
// payload by payload for a canary, and split into lines.
type hostOutput struct {
	t       *testing.T
	name    string
	canary  string
	raw     []byte
	pending []byte
}

// add takes one payload and returns the lines it completed.
func (h *hostOutput) add(p payload) [][]byte {
	h.t.Helper()
	if p.err != nil {
		h.t.Fatalf("%s: %v", h.name, p.err)
	}
	if bytes.Contains(p.data, []byte(h.canary)) {
		h.t.Errorf("the canary is in a %s payload the host received: %q", h.name, p.data)
	}
	h.raw = append(h.raw, p.data...)
	h.pending = append(h.pending, p.data...)
	var lines [][]byte
	for {
		i := bytes.IndexByte(h.pending, '\n')
		if i < 0 {
			return lines
		}
		lines = append(lines, bytes.Clone(h.pending[:i]))
		h.pending = h.pending[i+1:]
	}
}

// testEncryptedExecInVM runs an end-to-end encrypted exec in the VM, as
// `cocoonctl exec` would through `kubectl exec -i`: a grant carrying the
// owner's ephemeral key, a shell reading commands from sealed stdin. The
// host side here is the agent API (every ReadStdout/ReadStderr payload is
// checked) and the guest's console and log port (checked once the agent
// has logged past the session). The VM runs the sample attester in place
// of TEE hardware (QEMU under TCG has none), so the announcement is
// checked with sample evidence allowed explicitly, as
// `cocoonctl exec --insecure-sample-evidence` does.
func testEncryptedExecInVM(t *testing.T, v *VM, c *client.Client, logs *logStream, sid, ref string, execKey ed25519.PrivateKey) {
	const (
		cid    = "e2e-e2ee"
		eid    = "e2ee-1"
		canary = "CANARY-vm-e2ee-8f2d-typed"
	)
	runWorkload(t, c, sid, cid, ref, "/bin/sleep", "600")
	initDone := make(chan struct{})
	go func() {
		defer close(initDone)
		for range relayStream(c, cid, cid, false) { // the sealed init output, drained as the runtime would
		}
	}()

	tok, nonce, eph := testgrant.Sealed(t, execKey, "/bin/sh")
	if _, err := c.Agent.ExecProcess(callCtx(t), &agentpb.ExecProcessRequest{ContainerId: cid, ExecId: eid,
		Process: &agentpb.Process{Args: []string{execgrant.Command, tok}, Cwd: "/", User: &agentpb.User{}}}); err != nil {
		t.Fatalf("encrypted exec: %v", err)
	}
	stdoutCh, stderrCh := relayStream(c, cid, eid, false), relayStream(c, cid, eid, true)
	stdout := &hostOutput{t: t, name: "ReadStdout", canary: canary}
	stderr := &hostOutput{t: t, name: "ReadStderr", canary: canary}
	owner, err := sealedlog.NewExecOwner(eph)
	if err != nil {
		t.Fatal(err)
	}
	var ann *execgrant.Announcement
	var plainOut, plainErr []byte
	open := func(l []byte) {
		t.Helper()
		out, unsealed, err := owner.Line(l)
		if err != nil || unsealed {
			t.Fatalf("session line %.120q: %v (unsealed %v)", l, err, unsealed)
		}
		for _, o := range out {
			if o.Stderr {
				plainErr = append(plainErr, o.Data...)
			} else {
				plainOut = append(plainOut, o.Data...)
			}
		}
	}
	stdoutLine := func(l []byte) {
		t.Helper()
		if ann == nil { // the owner sends nothing before the evidence
			a, err := execgrant.ParseAnnouncement(l)
			if err != nil {
				t.Fatalf("the session's first stdout line %.120q: %v", l, err)
			}
			ann = a
			return
		}
		open(l)
	}
	// The agent's stdin key arrives sealed on stdout, after the
	// announcement.
	for owner.AgentKey() == nil {
		p, ok := <-stdoutCh
		if !ok {
			t.Fatal("stdout ended before the agent's stdin key")
		}
		for _, l := range stdout.add(p) {
			stdoutLine(l)
		}
	}

	// Typed on sealed stdin: the shell computes part of what it prints, so
	// the owner's plaintext is the command's output, not an echo of the
	// input.
	in, err := sealedlog.NewStdinSealer(owner.AgentKey())
	if err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	for _, cmd := range []string{"echo \"$((6*7)) " + canary + " in $PWD\"\n", "echo \"err " + canary + "\" >&2\n"} {
		b, err := in.Write([]byte(cmd))
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(append(sealed, b...), in.Flush()...)
	}
	sealed = append(sealed, in.Close()...) // the final record: the shell reads end of file
	if bytes.Contains(sealed, []byte(canary)) {
		t.Fatal("the canary is in the sealed stdin")
	}
	for len(sealed) > 0 { // in pieces, as a relay may split them
		n := min(len(sealed), 500)
		if _, err := c.Agent.WriteStdin(callCtx(t), &agentpb.WriteStreamRequest{ContainerId: cid, ExecId: eid, Data: sealed[:n]}); err != nil {
			t.Fatalf("WriteStdin: %v", err)
		}
		sealed = sealed[n:]
	}
	if _, err := c.Agent.CloseStdin(callCtx(t), &agentpb.CloseStdinRequest{ContainerId: cid, ExecId: eid}); err != nil {
		t.Fatalf("CloseStdin after the final record: %v", err)
	}

	for p := range stdoutCh {
		for _, l := range stdout.add(p) {
			stdoutLine(l)
		}
	}
	for p := range stderrCh {
		for _, l := range stderr.add(p) {
			open(l)
		}
	}
	if len(stdout.pending) > 0 || len(stderr.pending) > 0 {
		t.Fatalf("output ends in a partial line: %q / %q", stdout.pending, stderr.pending)
	}
	if err := owner.End(); err != nil {
		t.Fatalf("the session's output is not complete: %v", err)
	}
	w, err := c.Agent.WaitProcess(callCtx(t), &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: eid})
	if err != nil || w.Status != 0 {
		t.Fatalf("encrypted exec: WaitProcess %v %v, want exit 0", w, err)
	}

	t.Run("announcement", func(t *testing.T) {
		testgrant.CheckSampleAnnouncement(t, ann, nonce, stdout.raw, stderr.raw)
	})

	t.Run("owner-output", func(t *testing.T) {
		if want := "42 " + canary + " in /\n"; string(plainOut) != want {
			t.Errorf("owner recovered stdout %q, want %q", plainOut, want)
		}
		if want := "err " + canary + "\n"; string(plainErr) != want {
			t.Errorf("owner recovered stderr %q, want %q", plainErr, want)
		}
	})

	if _, err := c.Agent.SignalProcess(callCtx(t), &agentpb.SignalProcessRequest{ContainerId: cid, Signal: 9}); err != nil {
		t.Error(err)
	}
	<-initDone
	if _, err := c.Agent.WaitProcess(callCtx(t), &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: cid}); err != nil {
		t.Error(err)
	}
	if _, err := c.Agent.RemoveContainer(callCtx(t), &agentpb.RemoveContainerRequest{ContainerId: cid}); err != nil {
		t.Error(err)
	}

	t.Run("guest-logs", func(t *testing.T) {
		// The agent logs each request after it ends, on both sinks, in
		// order: once the RemoveContainer record is on the log port and
		// the console, everything it logged about the session is too.
		removed := func(r AgentRecord) bool {
			return r.Msg() == "rpc" && r.Str("method") == "RemoveContainer" && r.Str("container_id") == cid
		}
		logs.waitFor(t, "RemoveContainer rpc record", func(_ KataLine, r AgentRecord) bool { return removed(r) })
		waitConsoleRecord(t, v, removed)
		var sessionRecords int
		for _, l := range logs.snapshot() {
			if l.Record().Str("exec_id") == eid {
				sessionRecords++
			}
		}
		// The session's WriteStdin, ReadStdout, ReadStderr, CloseStdin and
		// WaitProcess were logged (agent.log=debug) on both sinks: they
		// were carrying records about the session, not idle.
		if sessionRecords < 5 {
			t.Errorf("%d log port records name exec %s, want its requests' records", sessionRecords, eid)
		}
		data, err := os.ReadFile(v.ConsoleLog)
		if err != nil {
			t.Fatal(err)
		}
		sessionRecords = 0
		for _, r := range ParseConsole(data).Agent {
			if r.Str("exec_id") == eid {
				sessionRecords++
			}
		}
		if sessionRecords < 5 {
			t.Errorf("%d console records name exec %s, want its requests' records", sessionRecords, eid)
		}
		// Only the owner's sealed stdin carried the canary (the grant's
		// argv does not), so seeing it here would be a leak.
		for _, l := range logs.snapshot() {
			if strings.Contains(l.Text, canary) {
				t.Errorf("the canary is on the log port: %s", l.Text)
			}
		}
		if i := bytes.Index(data, []byte(canary)); i >= 0 {
			t.Errorf("the canary is on the guest console: %q", data[max(0, i-200):min(len(data), i+200)])
		}
	})
}

// waitConsoleRecord waits until the agent writes a console record that
// matches, woken by each write to the console log.
func waitConsoleRecord(t *testing.T, v *VM, match func(AgentRecord) bool) {
	t.Helper()
	w, err := watchConsole(v.ConsoleLog)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), bootBound)
	defer cancel()
	defer context.AfterFunc(ctx, w.interrupt)()
	for {
		recs, err := w.next()
		if err != nil {
			t.Fatalf("console log: %v", err)
		}
		for _, r := range recs {
			if match(r) {
				return
			}
		}
		if err := w.wait(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("watching the console log: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatalf("no such console record after %s", bootBound)
		}
	}
}
