//go:build katacompat

package policy_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// policyContainer turns a recorded CreateContainerRequest input into the
// policy_data.containers entry genpolicy would write for it: the root path
// and the runtime-assigned values become genpolicy's patterns
// ($(root_path), $(bundle-id), $(sfprefix), the sandbox id regex), and the
// guest-pulled image storage is not listed (rules.rego accounts for
// image_guest_pull storages itself).
func policyContainer(t testing.TB, req map[string]any) map[string]any {
	t.Helper()
	oci := cloneJSON(t, req["OCI"]).(map[string]any)
	oci["Root"].(map[string]any)["Path"] = "$(root_path)"
	anno := oci["Annotations"].(map[string]any)
	anno["io.kubernetes.cri.sandbox-id"] = "^[a-z0-9]{64}$"
	anno["io.katacontainers.pkg.oci.bundle_path"] = "/run/containerd/io.containerd.runtime.v2.task/k8s.io/$(bundle-id)"
	if _, ok := anno["io.kubernetes.cri.sandbox-log-directory"]; ok {
		anno["io.kubernetes.cri.sandbox-log-directory"] = "^/var/log/pods/$(sandbox-namespace)_$(sandbox-name)_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
	}
	for _, m := range oci["Mounts"].([]any) {
		if mm := m.(map[string]any); mm["destination"] == "/etc/resolv.conf" {
			mm["source"] = "$(sfprefix)resolv.conf$"
		}
	}
	return map[string]any{
		"OCI":           oci,
		"storages":      []any{},
		"sandbox_pidns": false,
		"exec_commands": []any{},
		"devices":       []any{},
	}
}

func cloneJSON(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// genpolicyScale is Kata's rules.rego (1,800+ lines) with policy data for a
// three-container pod: two workload containers (from Kata's env_vars test
// case) and the pod's sandbox container (from the sysctls test case), in
// that order, so that the sandbox's CreateContainerRequest — returned as
// the request to decide — is tried against every entry before it matches.
func genpolicyScale(t testing.TB) (string, *agentpb.CreateContainerRequest) {
	t.Helper()
	sandbox := loadCases(t, "createcontainer_sysctls")[0]
	workload := loadCases(t, "createcontainer_env_vars")[0]
	if !sandbox.Allowed || !workload.Allowed {
		t.Fatal("fixtures: expected allow cases first")
	}
	w := kataInput(t, workload)
	text := genpolicyText(t, []any{policyContainer(t, w), policyContainer(t, w), policyContainer(t, kataInput(t, sandbox))})
	req := &agentpb.CreateContainerRequest{}
	if err := input.Decode(sandbox.Request, req); err != nil {
		t.Fatal(err)
	}
	return text, req
}

// The genpolicy-scale policy allows the sandbox's CreateContainerRequest
// with the state ops Kata's rules emit, and denies it once it is altered;
// the benchmarks depend on both.
func TestGenpolicyScaleDecisions(t *testing.T) {
	text, req := genpolicyScale(t)
	p := load(t, text)
	ctx := context.Background()
	d, err := p.Evaluate(ctx, "CreateContainerRequest", input.Encode(req))
	if err != nil || !d.Allowed || d.Overridden {
		t.Fatalf("sandbox container: %+v, %v (prints: %.500s)", d, err, d.Prints)
	}
	for _, key := range []string{`"/pstate/sandbox_name"`, `"/pstate/namespace"`, `"/pstate/` + req.ContainerId + `","value":2`} {
		if !strings.Contains(string(d.Ops), key) {
			t.Errorf("ops %s lack %s", d.Ops, key)
		}
	}
	evil := proto.Clone(req).(*agentpb.CreateContainerRequest)
	evil.OCI.Process.Args = []string{"/bin/sh"}
	d, err = p.Evaluate(ctx, "CreateContainerRequest", input.Encode(evil))
	if err != nil || d.Allowed {
		t.Fatalf("altered args: %+v, %v", d, err)
	}
	if !strings.Contains(d.Prints, "trying next policy container") {
		t.Fatalf("denial carries no print output: %.300s", d.Prints)
	}
}

// Erasing print() cannot change a verdict (print always succeeds): every
// Kata test case gets the same verdict and ops quietly as with prints, and
// a denial still carries the rules' print output.
func TestQuietAndVerboseAgree(t *testing.T) {
	text, sandbox := genpolicyScale(t)
	p := load(t, text)
	ctx := context.Background()
	type in struct {
		kind string
		doc  map[string]any
	}
	ins := []in{{"CreateContainerRequest", input.Encode(sandbox)}}
	for _, set := range []string{"copyfile", "createsandbox", "updateroutes", "updateinterface", "addarpneighbors", "createcontainer_sysctls", "createcontainer_env_vars", "state_execprocess"} {
		for _, c := range loadCases(t, set) {
			ins = append(ins, in{c.Kind, kataInput(t, c)})
		}
	}
	for i, x := range ins {
		q, qerr := p.Evaluate(ctx, x.kind, x.doc)
		v, verr := p.Explain(ctx, x.kind, x.doc)
		if (qerr == nil) != (verr == nil) || q.Allowed != v.Allowed || string(q.Ops) != string(v.Ops) {
			t.Errorf("%d %s: quiet %v/%s/%v, verbose %v/%s/%v", i, x.kind, q.Allowed, q.Ops, qerr, v.Allowed, v.Ops, verr)
		}
		if v.Prints == "" && strings.Contains(x.kind, "Container") {
			t.Errorf("%d %s: no print output with prints kept", i, x.kind)
		}
		if !q.Allowed && qerr == nil && q.Prints != v.Prints {
			t.Errorf("%d %s: denial explained differently:\n%.200s\n%.200s", i, x.kind, q.Prints, v.Prints)
		}
	}
}
