package rpc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/rpc"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// SetPolicy reports each installed policy's digest to OnPolicy; a policy
// that does not load reports nothing, and a failed measurement fails the rpc
// (the policy is in force but the log would not show it).
func TestSetPolicyMeasures(t *testing.T) {
	ctx := context.Background()
	text, err := policy.Builtin(policy.AllowAll)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(ctx, text, "test")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var fail error
	svc := rpc.New(rpc.Deps{Policy: policy.NewEngine(p, nil, nil), OnPolicy: func(d string) error {
		got = append(got, d)
		return fail
	}})

	if _, err := svc.SetPolicy(ctx, &agentpb.SetPolicyRequest{Policy: "not rego"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("broken policy: %v", err)
	}
	next := "package agent_policy\n\ndefault SetPolicyRequest := true\n"
	if _, err := svc.SetPolicy(ctx, &agentpb.SetPolicyRequest{Policy: next}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != policy.Digest(next) {
		t.Fatalf("measured %q, want [%s]", got, policy.Digest(next))
	}
	fail = errors.New("event log: no space left on device")
	if _, err := svc.SetPolicy(ctx, &agentpb.SetPolicyRequest{Policy: text}); !errdefs.IsInternal(err) {
		t.Fatalf("unmeasured SetPolicy answered %v, want INTERNAL", err)
	}
}
