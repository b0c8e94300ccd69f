package policy_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/policy"
)

// measurer records what the engine measures; fail, when set, fails
// RecordPolicySet.
type measurer struct {
	loaded, set, heads []string
	fail               error
}

func (m *measurer) RecordPolicyLoad(d string) error { m.loaded = append(m.loaded, d); return nil }
func (m *measurer) RecordPolicySet(d string) error {
	m.set = append(m.set, d)
	return m.fail
}
func (m *measurer) RecordDecisionHead(h string) error { m.heads = append(m.heads, h); return nil }

// SetPolicy measures each installed policy's digest; a policy that does not
// load measures nothing, and a failed measurement fails SetPolicy as
// INTERNAL (the policy is in force but the log would not show it).
func TestSetPolicyMeasures(t *testing.T) {
	ctx := context.Background()
	text := builtin(t, policy.AllowAll)
	m := &measurer{}
	e := policy.NewEngineWith(load(t, text), policy.EngineOptions{Measurer: m})

	if err := e.SetPolicy(ctx, "not rego", "SetPolicy"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("broken policy: %v", err)
	}
	next := "package agent_policy\n\ndefault SetPolicyRequest := true\n"
	if err := e.SetPolicy(ctx, next, "SetPolicy"); err != nil {
		t.Fatal(err)
	}
	if len(m.set) != 1 || m.set[0] != policy.Digest(next) {
		t.Fatalf("measured %q, want [%s]", m.set, policy.Digest(next))
	}
	m.fail = errors.New("event log: no space left on device")
	if err := e.SetPolicy(ctx, text, "SetPolicy"); !errdefs.IsInternal(err) {
		t.Fatalf("unmeasured SetPolicy answered %v, want INTERNAL", err)
	}
}

// Boot measures the policy it starts with, after initdata's has replaced
// the built-in one, and names initdata as its source.
func TestBootMeasuresInitdataPolicy(t *testing.T) {
	text := builtin(t, policy.AllowAllExceptExec)
	m := &measurer{}
	e, err := policy.Boot(context.Background(), policy.BootConfig{
		ReadFile: func(string) ([]byte, error) { return nil, os.ErrNotExist },
		Initdata: &policy.Text{Rego: text, Source: "initdata:abc"},
		Measurer: m,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Policy().Source() != "initdata:abc" || e.Policy().Digest() != policy.Digest(text) {
		t.Fatalf("policy in force from %s (%s)", e.Policy().Source(), e.Policy().Digest())
	}
	if len(m.loaded) != 1 || m.loaded[0] != policy.Digest(text) {
		t.Fatalf("measured %q at boot, want [%s]", m.loaded, policy.Digest(text))
	}
}
