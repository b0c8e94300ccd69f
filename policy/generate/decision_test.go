package generate

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// twoApps has a container named app in two workloads, with other images:
// a request for the second one must not pay for describing the first.
const twoApps = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: first}
  spec:
    containers:
    - {name: app, image: first-image, args: ["--one"]}
- apiVersion: batch/v1
  kind: Job
  metadata: {name: second}
  spec:
    template:
      spec:
        containers:
        - {name: app, image: second-image, args: ["--two"]}
`

// builtinCounter counts the calls of one built-in during an evaluation.
type builtinCounter struct {
	name  string
	calls int
}

func (*builtinCounter) Enabled() bool               { return true }
func (*builtinCounter) Config() topdown.TraceConfig { return topdown.TraceConfig{} }
func (b *builtinCounter) TraceEvent(ev topdown.Event) {
	if ev.Op != topdown.EvalOp {
		return
	}
	if e, ok := ev.Node.(*ast.Expr); ok && e.IsCall() && e.Operator().String() == b.name {
		b.calls++
	}
}

// TestAllowedDecisionDescribesNothing: an allowed CreateContainer only
// runs the yes/no tests; the descriptions (sprintf) are for denials. It
// also shows the request is not compared field by field with every entry.
func TestAllowedDecisionDescribesNothing(t *testing.T) {
	text, rt := fakeRuntime(t, twoApps)
	w := rt.in.Workloads[1]
	req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
	decision, err := rego.New(rego.Query("data.agent_policy.CreateContainerRequest"), rego.Module("policy.rego", text)).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tr := &builtinCounter{name: "sprintf"}
	rs, err := decision.Eval(context.Background(), rego.EvalInput(input.Encode(req)), rego.EvalQueryTracer(tr))
	if err != nil || len(rs) != 1 || rs[0].Expressions[0].Value != true {
		t.Fatalf("decision %v %v", rs, err)
	}
	if tr.calls != 0 {
		t.Errorf("an allowed decision called sprintf %d times", tr.calls)
	}
	q := prepareCreate(t, text)
	allowed, problems := decideCreate(t, q, req)
	if !allowed || len(problems) != 0 {
		t.Fatalf("allowed %v, problems %v", allowed, problems)
	}
	// A denial still names the closest entry: the Job's, with the field.
	req.OCI.Process.Args = []string{"--one"}
	if allowed, problems = decideCreate(t, q, req); allowed || len(problems) != 1 {
		t.Fatalf("allowed %v, problems %v", allowed, problems)
	}
	want := `container "app" (Job/second): OCI.Process.Args`
	if len(problems[0]) < len(want) || problems[0][:len(want)] != want {
		t.Errorf("denial %q does not lead with %q", problems[0], want)
	}
}

// createQuery evaluates the fast yes/no path and the descriptions
// separately, so a test can check they agree.
const createQuery = `allowed := [x | data.agent_policy.create_allowed; x := true]
problems := data.agent_policy.create_problems
decision := data.agent_policy.CreateContainerRequest`

// fakeRuntime generates the policy for yaml against fake images and
// returns it with a mini runtime that makes the requests the runtime
// would send for the YAML's workloads.
func fakeRuntime(t testing.TB, yaml string) (string, *miniRuntime) {
	t.Helper()
	_, text := buildFake(t, yaml, "")
	in, err := ParseInput([]byte(yaml), defaults(t).PassThrough)
	if err != nil {
		t.Fatal(err)
	}
	return text, &miniRuntime{t: t, in: in, images: fakeImages(in), runDir: "/run/kata-containers"}
}

func prepareCreate(t testing.TB, text string) rego.PreparedEvalQuery {
	t.Helper()
	q, err := rego.New(rego.Query(createQuery), rego.Module("policy.rego", text)).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// decideCreate returns the decision and the descriptions of what differs,
// failing the test when the yes/no tests and the descriptions disagree.
func decideCreate(t testing.TB, q rego.PreparedEvalQuery, req *agentpb.CreateContainerRequest, opts ...rego.EvalOption) (bool, []string) {
	t.Helper()
	rs, err := q.Eval(context.Background(), append(opts, rego.EvalInput(input.Encode(req)))...)
	if err != nil || len(rs) != 1 {
		t.Fatalf("evaluate: %v (%d results)", err, len(rs))
	}
	allowed := len(rs[0].Bindings["allowed"].([]any)) > 0
	var problems []string
	for _, p := range rs[0].Bindings["problems"].([]any) {
		problems = append(problems, p.(string))
	}
	if decision := rs[0].Bindings["decision"].(bool); decision != allowed {
		t.Errorf("CreateContainerRequest %v, create_allowed %v", decision, allowed)
	}
	if allowed != (len(problems) == 0) {
		t.Errorf("create_allowed %v but the descriptions say %q", allowed, problems)
	}
	return allowed, problems
}
