//go:build katacompat

package policy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Under Kata's own rules.rego the explanation names the policy container
// the sandbox's request was meant for and the field that was altered, and
// the agent's denial carries it ahead of genpolicy's print output.
func TestGenpolicyDenialExplained(t *testing.T) {
	text, req := genpolicyScale(t)
	p := load(t, text)
	ctx := context.Background()
	cases := []struct {
		mutate func(*agentpb.CreateContainerRequest)
		want   string
	}{
		{func(r *agentpb.CreateContainerRequest) { r.OCI.Process.Args = []string{"/bin/sh"} },
			`: closest policy_data.containers[2] (23 of 24 checks pass): OCI.Process.Args[0]: got "/bin/sh", policy allows "/pause"`},
		{func(r *agentpb.CreateContainerRequest) { r.OCI.Process.Cwd = "/tmp" },
			`: closest policy_data.containers[2] (23 of 24 checks pass): OCI.Process.Cwd: got "/tmp", policy allows "/"`},
		{func(r *agentpb.CreateContainerRequest) { r.OCI.Process.Env = append(r.OCI.Process.Env, "EVIL=1") },
			`: closest policy_data.containers[2] (23 of 24 checks pass): OCI.Process.Env[EVIL]: got "EVIL=1", not in the policy`},
		{func(r *agentpb.CreateContainerRequest) { r.OCI.Annotations["example.com/evil"] = "1" },
			`OCI.Annotations["example.com/evil"]: not in the policy`},
	}
	for _, tc := range cases {
		evil := proto.Clone(req).(*agentpb.CreateContainerRequest)
		tc.mutate(evil)
		d, err := p.Evaluate(ctx, "CreateContainerRequest", input.Encode(evil))
		if err != nil || d.Allowed {
			t.Fatalf("%s: %+v, %v", tc.want, d, err)
		}
		t.Logf("why: %s", d.Why)
		if !strings.Contains(d.Why, tc.want) {
			t.Errorf("why %q\nwant %q", d.Why, tc.want)
		}
	}
	e := policy.NewEngine(p, nil, nil)
	evil := proto.Clone(req).(*agentpb.CreateContainerRequest)
	evil.OCI.Process.Cwd = "/tmp"
	_, err := e.Gate(ctx, "CreateContainer", evil)
	if !errdefs.IsPermissionDenied(err) || !strings.HasPrefix(err.Error(), "CreateContainerRequest is blocked by policy: CreateContainerRequest: closest policy_data.containers[2]") ||
		!strings.Contains(err.Error(), "; policy output: ") {
		t.Fatalf("denial %.300q", err)
	}
}

// BenchmarkGateCreateContainerDenied is a denied CreateContainer under the
// genpolicy-scale policy: the decision, the print-keeping evaluation and
// the explanation.
func BenchmarkGateCreateContainerDenied(b *testing.B) {
	text, req := genpolicyScale(b)
	e := policy.NewEngine(load(b, text), nil, nil)
	evil := proto.Clone(req).(*agentpb.CreateContainerRequest)
	evil.OCI.Process.Cwd = "/tmp"
	ctx := context.Background()
	measure(b, func() {
		if _, err := e.Gate(ctx, "CreateContainer", evil); !errdefs.IsPermissionDenied(err) {
			b.Fatal(err)
		}
	})
}
