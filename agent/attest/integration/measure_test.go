package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// cocoonEvents returns the agent's own measurements as "operation content".
func cocoonEvents(evs []eventlog.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Domain == eventlog.DomainCocoon {
			out = append(out, ev.Operation+" "+ev.Content)
		}
	}
	return out
}

// The absence of initdata, the policy in force at boot, every policy SetPolicy installs, and the
// decision log's head at DestroySandbox are measured into the runtime event
// log (sample attester: the log is kept, there is no RTMR to extend).
// Rejected SetPolicy calls — denied by the policy, or not compiling — add
// nothing.
func TestPolicyMeasurements(t *testing.T) {
	boot, err := policy.Builtin(policy.AllowAll)
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t)
	cfg.AttestSample = true
	cfg.PolicyFile = filepath.Join(t.TempDir(), "policy.rego")
	if err := os.WriteFile(cfg.PolicyFile, []byte(boot), 0o600); err != nil {
		t.Fatal(err)
	}
	a := start(t, cfg, daemon.Options{})
	ctx := ctxT(t)

	// Replaces the policy, allows tearing down, refuses further SetPolicy.
	next := "package agent_policy\n\ndefault DestroySandboxRequest := true\ndefault SetPolicyRequest := false\n"
	if _, err := a.SetPolicy(ctx, &agentpb.SetPolicyRequest{Policy: "package agent_policy\n\nthis is not rego"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SetPolicy with a broken policy: %v", err)
	}
	if _, err := a.SetPolicy(ctx, &agentpb.SetPolicyRequest{Policy: next}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetPolicy(ctx, &agentpb.SetPolicyRequest{Policy: boot}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("SetPolicy under a policy refusing it: %v", err)
	}
	// No initdata was attached: that is measured first, so a verifier
	// knows the boot policy is the agent's own and not a pod owner's.
	// A successful SetPolicy also measures the decision log's head, whose
	// value the chain check below pins down.
	headAfterSet := "PolicyDecisionLogHead sha256:"
	want := []string{
		eventlog.OpInitdata + " " + eventlog.InitdataNone,
		"LoadPolicy sha256:" + policy.Digest(boot),
		headAfterSet,
		"SetPolicy sha256:" + policy.Digest(next),
	}
	got := cocoonEvents(a.events(t))
	if len(got) == len(want) && strings.HasPrefix(got[2], headAfterSet) && len(got[2]) == len(headAfterSet)+64 {
		want[2] = got[2]
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("measurements\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The head is measured once DestroySandbox has answered; wait for its
	// write to the event log (bounded by the test's deadline, not asserted
	// on). The watch starts before the call so that no write is missed.
	evlog := filepath.Join(cfg.StateDir, "eventlog")
	w := watchFile(t, evlog)
	if _, err := a.DestroySandbox(ctx, &agentpb.DestroySandboxRequest{}); err != nil {
		t.Fatal(err)
	}
	got = nil
	err = w.until(ctx, func() bool {
		// An entry being appended may be read half-written; the write
		// that completes it brings another change.
		if raw, err := os.ReadFile(evlog); err == nil {
			if evs, err := eventlog.Parse(raw); err == nil {
				got = cocoonEvents(evs)
			}
		}
		return len(got) >= 5
	})
	if err != nil {
		t.Fatalf("decision log head never measured (%v): %q", err, got)
	}
	raw, err := os.ReadFile(cfg.DecisionLog)
	if err != nil {
		t.Fatal(err)
	}
	res, err := decisionlog.Verify([]decisionlog.Source{{Name: cfg.DecisionLog, R: bytes.NewReader(raw)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[4] != "PolicyDecisionLogHead sha256:"+res.LastHash {
		t.Fatalf("measurements after DestroySandbox %q, want the head %s of %d decision log entries", got, res.LastHash, res.Entries)
	}
	// The head measured after SetPolicy is an entry of the same chain.
	if mid := strings.TrimPrefix(want[2], headAfterSet); !bytes.Contains(raw, []byte(`"hash":"`+mid+`"`)) {
		t.Errorf("head %s measured after SetPolicy is not an entry of the decision log", mid)
	}
	// The head covers the DestroySandbox decision itself.
	if !bytes.Contains(raw, []byte(`"request":"DestroySandboxRequest"`)) {
		t.Errorf("decision log lacks DestroySandbox:\n%s", raw)
	}
}

// fileWatch reports writes to one file through inotify, so that a test waits
// for the write it expects instead of re-reading the file on a timer.
type fileWatch struct{ f *os.File }

func watchFile(t *testing.T, path string) *fileWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	// Non-blocking, so Go's poller owns it and a deadline ends a read.
	f := os.NewFile(uintptr(fd), "inotify")
	t.Cleanup(func() { f.Close() })
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY|unix.IN_CLOSE_WRITE); err != nil {
		t.Fatalf("watch %s: %v", path, err)
	}
	return &fileWatch{f: f}
}

// until calls done now and after every write to the file, until done
// reports true or ctx ends.
func (w *fileWatch) until(ctx context.Context, done func() bool) error {
	stop := context.AfterFunc(ctx, func() { _ = w.f.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 4096) // room for many events, each at least 16 bytes
	for !done() {
		if _, err := w.f.Read(buf); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("inotify: %w", err)
		}
	}
	return nil
}
