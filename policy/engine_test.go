package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

func load(t testing.TB, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Load(context.Background(), text, "test")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func builtin(t testing.TB, name string) string {
	t.Helper()
	s, err := policy.Builtin(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// agentMethods lists every AgentService method with an empty request.
func agentMethods(t *testing.T) map[string]proto.Message {
	t.Helper()
	d, err := protoregistry.GlobalFiles.FindDescriptorByName("grpc.AgentService")
	if err != nil {
		t.Fatal(err)
	}
	ms := d.(protoreflect.ServiceDescriptor).Methods()
	out := map[string]proto.Message{}
	for i := 0; i < ms.Len(); i++ {
		md := ms.Get(i)
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
		if err != nil {
			t.Fatal(err)
		}
		out[string(md.Name())] = mt.New().Interface()
	}
	return out
}

// Every shipped policy decides every rpc; the table says which it denies.
func TestBuiltinsDecideEveryRequest(t *testing.T) {
	denied := map[string]map[string]bool{
		policy.AllowAll:           {},
		policy.AllowAllExceptExec: {"ExecProcess": true},
		policy.CocoDefault: {"ExecProcess": true, "ReadStdout": true, "ReadStderr": true,
			"GetMetrics": true, "SetPolicy": true, "GetDiagnosticData": true},
	}
	methods := agentMethods(t)
	if len(methods) != 42 {
		t.Fatalf("%d agent methods, want 42", len(methods))
	}
	for _, name := range policy.BuiltinNames() {
		want, ok := denied[name]
		if !ok {
			t.Fatalf("built-in %s has no expectations", name)
		}
		e := policy.NewEngine(load(t, builtin(t, name)), nil, nil)
		for m, req := range methods {
			_, err := e.Gate(context.Background(), m, req)
			switch {
			case want[m] && !errdefs.IsPermissionDenied(err):
				t.Errorf("%s: %s: got %v, want permission denied", name, m, err)
			case !want[m] && err != nil:
				t.Errorf("%s: %s: got %v, want allowed", name, m, err)
			}
		}
	}
}

func TestDenialMessageCarriesPrints(t *testing.T) {
	e := policy.NewEngine(load(t, `package agent_policy
import rego.v1
default ExecProcessRequest := false
ExecProcessRequest if {
	print("exec of", input.process.Args, "refused")
	false
}`), nil, nil)
	_, err := e.Gate(context.Background(), "ExecProcess", &agentpb.ExecProcessRequest{
		ContainerId: "c1", Process: &agentpb.Process{Args: []string{"/bin/sh"}}})
	if !errdefs.IsPermissionDenied(err) {
		t.Fatalf("got %v", err)
	}
	want := `ExecProcessRequest is blocked by policy: exec of ["/bin/sh"] refused`
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
}

func TestUndefinedIsInternal(t *testing.T) {
	e := policy.NewEngine(load(t, "package agent_policy\ndefault CreateSandboxRequest := true\n"), nil, nil)
	_, err := e.Gate(context.Background(), "StartContainer", &agentpb.StartContainerRequest{})
	if !errdefs.IsInternal(err) || !strings.Contains(err.Error(), "StartContainerRequest") {
		t.Fatalf("got %v, want internal naming the request", err)
	}
	// A result that is neither a bool nor {"allowed"...} is internal too.
	e = policy.NewEngine(load(t, "package agent_policy\nStartContainerRequest := 42\n"), nil, nil)
	if _, err := e.Gate(context.Background(), "StartContainer", &agentpb.StartContainerRequest{}); !errdefs.IsInternal(err) {
		t.Fatalf("got %v", err)
	}
}

func TestAllowRequestsFailingPolicy(t *testing.T) {
	p := load(t, `package agent_policy
default AllowRequestsFailingPolicy := true
default ExecProcessRequest := false
`)
	if !p.AllowsFailures() {
		t.Fatal("AllowRequestsFailingPolicy not picked up")
	}
	e := policy.NewEngine(p, nil, nil)
	for m, req := range map[string]proto.Message{
		"ExecProcess":    &agentpb.ExecProcessRequest{},
		"StartContainer": &agentpb.StartContainerRequest{}, // undefined
	} {
		if _, err := e.Gate(context.Background(), m, req); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}

func TestBadPolicies(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"no package", "default ExecProcessRequest := false\n", "parse policy"},
		{"wrong package", "package other\ndefault ExecProcessRequest := false\n", "want package agent_policy"},
		{"syntax", "package agent_policy\nExecProcessRequest := {\n", "parse policy"},
		{"compile", "package agent_policy\nExecProcessRequest := x\n", "compile policy"},
		{"arity", "package agent_policy\nExecProcessRequest := count(1, 2)\n", "compile policy"},
		{"empty", "", "parse policy"},
	} {
		_, err := policy.Load(context.Background(), tc.text, "test")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestRegoV0AndV1BothLoad(t *testing.T) {
	v0 := "package agent_policy\nimport future.keywords.in\ndefault ExecProcessRequest := false\nExecProcessRequest { input.process.Args[0] in [\"/bin/ls\"] }\n"
	v1 := "package agent_policy\ndefault ExecProcessRequest := false\nExecProcessRequest if input.process.Args[0] in [\"/bin/ls\"]\n"
	for _, text := range []string{v0, v1} {
		e := policy.NewEngine(load(t, text), nil, nil)
		if _, err := e.Gate(context.Background(), "ExecProcess", &agentpb.ExecProcessRequest{Process: &agentpb.Process{Args: []string{"/bin/ls"}}}); err != nil {
			t.Errorf("allowed exec: %v", err)
		}
		if _, err := e.Gate(context.Background(), "ExecProcess", &agentpb.ExecProcessRequest{Process: &agentpb.Process{Args: []string{"/bin/sh"}}}); !errdefs.IsPermissionDenied(err) {
			t.Errorf("denied exec: %v", err)
		}
	}
}

func createReq(id, sandbox string, args ...string) *agentpb.CreateContainerRequest {
	return &agentpb.CreateContainerRequest{
		ContainerId: id,
		OCI: &agentpb.Spec{
			Annotations: map[string]string{"io.kubernetes.cri.sandbox-name": sandbox},
			Process:     &agentpb.Process{Args: args},
		},
	}
}

func execReq(id string, args ...string) *agentpb.ExecProcessRequest {
	return &agentpb.ExecProcessRequest{ContainerId: id, ExecId: "e", Process: &agentpb.Process{Args: args}}
}

func state(t *testing.T, e *policy.Engine) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(e.Policy().State(), &doc); err != nil {
		t.Fatal(err)
	}
	return doc["pstate"].(map[string]any)
}

// gate runs one request through the engine the way the server does:
// decide, run the operation (opErr), finish.
func gate(e *policy.Engine, method string, req proto.Message, opErr error) error {
	finish, err := e.Gate(context.Background(), method, req)
	if err != nil {
		return err
	}
	if finish != nil {
		finish(opErr)
	}
	return opErr
}

func TestStatefulSequence(t *testing.T) {
	e := policy.NewEngine(load(t, readFile(t, "testdata/stateful.rego")), nil, nil)
	steps := []struct {
		method string
		req    proto.Message
		opErr  error
		allow  bool
	}{
		{"ExecProcess", execReq("pause", "/bin/ls"), nil, false},                                  // nothing created yet
		{"CreateContainer", createReq("pause", "pod-a", "/pause"), nil, true},                     // pins pod-a
		{"CreateContainer", createReq("app", "pod-b", "/bin/sh", "-c", "sleep 3600"), nil, false}, // other sandbox name
		{"CreateContainer", createReq("app", "pod-a", "/bin/sh", "-c", "sleep 3600"), nil, true},
		{"CreateContainer", createReq("evil", "pod-a", "/bin/evil"), nil, false}, // not in policy_data
		{"ExecProcess", execReq("app", "/bin/ls"), nil, true},
		{"ExecProcess", execReq("app", "/bin/sh"), nil, false},   // command not listed
		{"ExecProcess", execReq("ghost", "/bin/ls"), nil, false}, // unknown container
		{"ExecProcess", execReq("pause", "/bin/ls"), nil, false}, // pause has no exec list
		{"RemoveContainer", &agentpb.RemoveContainerRequest{ContainerId: "app"}, nil, true},
		{"ExecProcess", execReq("app", "/bin/ls"), nil, false}, // forgotten
	}
	for i, s := range steps {
		err := gate(e, s.method, s.req, s.opErr)
		if s.allow && err != nil {
			t.Fatalf("step %d %s: %v", i, s.method, err)
		}
		if !s.allow && !errdefs.IsPermissionDenied(err) {
			t.Fatalf("step %d %s: got %v, want permission denied", i, s.method, err)
		}
	}
	st := state(t, e)
	if st["sandbox_name"] != "pod-a" || st["pause"] != float64(0) || st["app"] != nil {
		t.Fatalf("final state %v", st)
	}
}

// A failed operation leaves the state as it was; a retry succeeds.
func TestFailedOperationKeepsState(t *testing.T) {
	e := policy.NewEngine(load(t, readFile(t, "testdata/stateful.rego")), nil, nil)
	boom := errors.New("mount failed")
	if err := gate(e, "CreateContainer", createReq("pause", "pod-a", "/pause"), boom); err != boom {
		t.Fatal(err)
	}
	if st := state(t, e); len(st) != 0 {
		t.Fatalf("state changed by a failed operation: %v", st)
	}
	// A different sandbox name is still acceptable, since nothing was pinned.
	if err := gate(e, "CreateContainer", createReq("pause", "pod-b", "/pause"), nil); err != nil {
		t.Fatal(err)
	}
	if st := state(t, e); st["sandbox_name"] != "pod-b" {
		t.Fatalf("state %v", st)
	}
}

// While a state-changing request is in flight, requests without ops are
// not held up, and a second state-changing request waits for the first and
// is decided against its committed state.
func TestOpsSerialisedOthersNot(t *testing.T) {
	e := policy.NewEngine(load(t, readFile(t, "testdata/stateful.rego")), nil, nil)
	ctx := context.Background()
	finish, err := e.Gate(ctx, "CreateContainer", createReq("pause", "pod-a", "/pause"))
	if err != nil || finish == nil {
		t.Fatalf("create: finish=%v err=%v", finish != nil, err)
	}
	// No ops: not serialised behind the pending create.
	done := make(chan error, 1)
	go func() {
		_, err := e.Gate(ctx, "StartContainer", &agentpb.StartContainerRequest{ContainerId: "pause"})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a request without ops waited for a pending state change")
	}
	// With ops: waits, then sees pod-a pinned and is denied for pod-b.
	second := make(chan error, 1)
	go func() {
		second <- gate(e, "CreateContainer", createReq("other", "pod-b", "/bin/sh", "-c", "sleep 3600"), nil)
	}()
	select {
	case err := <-second:
		t.Fatalf("second state-changing request did not wait: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	finish(nil)
	if err := <-second; !errdefs.IsPermissionDenied(err) {
		t.Fatalf("second create: got %v, want denied against the committed sandbox name", err)
	}
}

func TestSetPolicyGatedAndResetsState(t *testing.T) {
	ctx := context.Background()
	e := policy.NewEngine(load(t, readFile(t, "testdata/stateful.rego")), nil, nil)
	if err := gate(e, "CreateContainer", createReq("pause", "pod-a", "/pause"), nil); err != nil {
		t.Fatal(err)
	}
	allowAll := builtin(t, policy.AllowAll)
	if _, err := e.Gate(ctx, "SetPolicy", &agentpb.SetPolicyRequest{Policy: allowAll}); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("SetPolicy under a policy that denies it: %v", err)
	}
	// A policy that allows SetPolicy only for a given text: input is {"policy": text}.
	gatekeeper := "package agent_policy\nimport rego.v1\ndefault SetPolicyRequest := false\nSetPolicyRequest if startswith(input.policy, \"# cocoon policy: allow-all.\")\n"
	if err := e.SetPolicy(ctx, gatekeeper, "test"); err != nil {
		t.Fatal(err)
	}
	if len(state(t, e)) != 0 {
		t.Fatal("new policy did not start with fresh state")
	}
	if _, err := e.Gate(ctx, "SetPolicy", &agentpb.SetPolicyRequest{Policy: "package agent_policy\n"}); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("got %v", err)
	}
	if _, err := e.Gate(ctx, "SetPolicy", &agentpb.SetPolicyRequest{Policy: allowAll}); err != nil {
		t.Fatalf("got %v", err)
	}
	// A policy that does not compile is refused and the old one stays.
	if err := e.SetPolicy(ctx, "package agent_policy\nx := \n", "test"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("got %v", err)
	}
	if e.Policy().Text() != gatekeeper {
		t.Fatal("a bad policy replaced the current one")
	}
}

func TestDecisionLogRecordsAndVerifies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	dl, err := decisionlog.Open(path, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := policy.NewEngine(load(t, readFile(t, "testdata/stateful.rego")), dl, nil)
	_ = gate(e, "CreateContainer", createReq("pause", "pod-a", "/pause"), nil)
	_ = gate(e, "ExecProcess", execReq("ghost", "/bin/ls"), nil)
	if err := dl.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := decisionlog.Verify([]decisionlog.Source{{Name: path, R: f}})
	if err != nil {
		t.Fatal(err)
	}
	// policy install, create decision, create commit, exec decision.
	if res.Entries != 4 {
		t.Fatalf("%d entries, want 4", res.Entries)
	}
	text := readFile(t, path)
	for _, want := range []string{`"request":"CreateContainerRequest"`, `"committed":true`, `"allowed":false`, `"ops":[{`} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %s:\n%s", want, text)
		}
	}
}
