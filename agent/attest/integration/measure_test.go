package integration_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

	if _, err := a.DestroySandbox(ctx, &agentpb.DestroySandboxRequest{}); err != nil {
		t.Fatal(err)
	}
	// The head is measured once DestroySandbox has answered; wait for it
	// (bounded by the test's deadline, not asserted on).
	got = nil
	for len(got) < 5 {
		if ctx.Err() != nil {
			t.Fatalf("decision log head never measured: %q", got)
		}
		time.Sleep(10 * time.Millisecond)
		// An entry being appended may be read half-written; read again.
		if raw, err := os.ReadFile(filepath.Join(cfg.StateDir, "eventlog")); err == nil {
			if evs, err := eventlog.Parse(raw); err == nil {
				got = cocoonEvents(evs)
			}
		}
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
