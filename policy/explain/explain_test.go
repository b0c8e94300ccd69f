package explain_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

func loadFile(t testing.TB, path string) *policy.Policy {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return loadText(t, string(b))
}

func loadText(t testing.TB, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Load(context.Background(), text, "test")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const image = "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// app is the request testdata/genpolicy-style.rego allows as its
// container 1.
func app() *agentpb.CreateContainerRequest {
	return &agentpb.CreateContainerRequest{
		ContainerId: "app1",
		OCI: &agentpb.Spec{
			Version: "1.1.0",
			Annotations: map[string]string{
				"io.kubernetes.cri.container-type": "container",
				"io.kubernetes.cri.container-name": "app",
				"io.kubernetes.cri.image-name":     image,
				"io.kubernetes.cri.sandbox-name":   "web-1",
			},
			Process: &agentpb.Process{
				Args: []string{"/bin/echo", "hello"},
				Env:  []string{"PATH=/usr/local/bin:/usr/bin:/bin", "POD_NAME=web-1"},
				Cwd:  "/",
				User: &agentpb.User{UID: 1000, GID: 1000},
			},
			Mounts: []*agentpb.Mount{{Destination: "/etc/hosts", Type: "bind", Source: "/run/kata-containers/shared/containers/abc123-0f0f-hosts", Options: []string{"rbind", "ro"}}},
		},
	}
}

// pause is the sandbox container the policy allows as its container 0.
func pause() *agentpb.CreateContainerRequest {
	return &agentpb.CreateContainerRequest{
		ContainerId: "pause1",
		OCI: &agentpb.Spec{
			Version: "1.1.0",
			Annotations: map[string]string{
				"io.kubernetes.cri.container-type": "sandbox",
				"io.kubernetes.cri.sandbox-name":   "web-1",
			},
			Process: &agentpb.Process{
				Args: []string{"/pause"},
				Env:  []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
				Cwd:  "/",
				User: &agentpb.User{UID: 65535, GID: 65535},
			},
		},
	}
}

// genpolicyCases are mutations of allowed requests with the one-line
// reason each must get. Each names the closest container and the field.
var genpolicyCases = []struct {
	name   string
	base   func() *agentpb.CreateContainerRequest
	mutate func(*agentpb.CreateContainerRequest)
	want   string
}{
	{"changed arg", app, func(r *agentpb.CreateContainerRequest) { r.OCI.Process.Args[1] = "sh" },
		`closest policy_data.containers[1] (23 of 24 checks pass): OCI.Process.Args[1]: got "sh", policy allows "hello"`},
	{"extra arg", app, func(r *agentpb.CreateContainerRequest) { r.OCI.Process.Args = append(r.OCI.Process.Args, "-n") },
		`containers[1] (23 of 24 checks pass): OCI.Process.Args[2]: got "-n", policy allows no argument 2`},
	{"missing arg", app, func(r *agentpb.CreateContainerRequest) { r.OCI.Process.Args = r.OCI.Process.Args[:1] },
		`OCI.Process.Args[1]: missing, policy expects "hello"`},
	{"extra env", app, func(r *agentpb.CreateContainerRequest) {
		r.OCI.Process.Env = append(r.OCI.Process.Env, "LD_PRELOAD=/x.so")
	},
		`containers[1] (23 of 24 checks pass): OCI.Process.Env[LD_PRELOAD]: got "LD_PRELOAD=/x.so", not in the policy`},
	{"changed env", app, func(r *agentpb.CreateContainerRequest) { r.OCI.Process.Env[0] = "PATH=/tmp" },
		`OCI.Process.Env[PATH]: got "PATH=/tmp", policy allows "PATH=/usr/local/bin:/usr/bin:/bin"`},
	{"other image", app, func(r *agentpb.CreateContainerRequest) {
		r.OCI.Annotations["io.kubernetes.cri.image-name"] = "docker.io/library/busybox:latest"
	}, `OCI.Annotations["io.kubernetes.cri.image-name"]: got "docker.io/library/busybox:latest", policy allows "docker.io/library/busybox@sha256:0123`},
	{"extra annotation", app, func(r *agentpb.CreateContainerRequest) { r.OCI.Annotations["example.com/evil"] = "1" },
		`OCI.Annotations["example.com/evil"]: not in the policy (value "1")`},
	{"extra hostPath", app, func(r *agentpb.CreateContainerRequest) {
		r.OCI.Mounts = append(r.OCI.Mounts, &agentpb.Mount{Destination: "/host", Type: "bind", Source: "/"})
	}, `OCI.Mounts[destination="/host"]: not in the policy (source "/")`},
	{"mount source", app, func(r *agentpb.CreateContainerRequest) { r.OCI.Mounts[0].Source = "/etc/passwd" },
		`OCI.Mounts[destination="/etc/hosts"].source: got "/etc/passwd", policy allows "$(sfprefix)hosts$"`},
	// $(sfprefix) is a wildcard to the comparison, which therefore finds
	// no difference; the explanation falls back to the failing condition.
	{"mount source in a pattern", app, func(r *agentpb.CreateContainerRequest) { r.OCI.Mounts[0].Source = "/etc/hosts" },
		`CreateContainerRequest: policy.rego:26: allow_mounts(p_oci, i_oci): is undefined or false`},
	{"root user", app, func(r *agentpb.CreateContainerRequest) { r.OCI.Process.User.UID = 0 },
		`OCI.Process.User.UID: got 0, policy allows 1000`},
	{"cwd", app, func(r *agentpb.CreateContainerRequest) { r.OCI.Process.Cwd = "/tmp" },
		`OCI.Process.Cwd: got "/tmp", policy allows "/"`},
	{"sandbox pidns", app, func(r *agentpb.CreateContainerRequest) { r.SandboxPidns = true },
		`sandbox_pidns: got true, policy allows false`},
	{"string_user", app, func(r *agentpb.CreateContainerRequest) { r.StringUser = &agentpb.StringUser{Uid: "0"} },
		`allow_create_container_input: string_user: got {`},
	{"hooks", app, func(r *agentpb.CreateContainerRequest) {
		r.OCI.Hooks = &agentpb.Hooks{Prestart: []*agentpb.Hook{{Path: "/evil"}}}
	}, `allow_create_container_input: OCI.Hooks: got {`},
	{"pause args", pause, func(r *agentpb.CreateContainerRequest) { r.OCI.Process.Args = []string{"/bin/sh"} },
		`closest policy_data.containers[0] (23 of 24 checks pass): OCI.Process.Args[0]: got "/bin/sh", policy allows "/pause"`},
}

func TestGenpolicyStyleDenials(t *testing.T) {
	p := loadFile(t, "testdata/genpolicy-style.rego")
	ctx := context.Background()
	for _, base := range []func() *agentpb.CreateContainerRequest{app, pause} {
		d, err := p.Explain(ctx, "CreateContainerRequest", input.Encode(base()))
		if err != nil || !d.Allowed || d.Why != "" {
			t.Fatalf("unaltered request: %+v, %v", d, err)
		}
	}
	for _, tc := range genpolicyCases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.base()
			tc.mutate(r)
			d, err := p.Explain(ctx, "CreateContainerRequest", input.Encode(r))
			if err != nil || d.Allowed {
				t.Fatalf("got %+v, %v; want a denial", d, err)
			}
			if !strings.Contains(d.Why, tc.want) || !strings.HasPrefix(d.Why, "CreateContainerRequest") && !strings.HasPrefix(d.Why, "allow_create_container_input") {
				t.Fatalf("why %q\nwant it to contain %q", d.Why, tc.want)
			}
			if strings.ContainsAny(d.Why, "\n\r") {
				t.Fatalf("why spans lines: %q", d.Why)
			}
		})
	}
}

// Policies that are not genpolicy-shaped get the rule and the condition.
func TestRuleDenials(t *testing.T) {
	const simple = `package agent_policy
import rego.v1
default ExecProcessRequest := false
default CreateContainerRequest := false
ExecProcessRequest if {
	input.container_id == "web"
	input.process.Args[0] == "/bin/date"
}
ExecProcessRequest if {
	some c in policy_data.containers
	c.id == input.container_id
	input.process.Args in c.exec
}
CreateContainerRequest if {
	some c in policy_data.containers
	input.OCI.Process.Args == c.args
}
CopyFileRequest := false if startswith(input.path, "/etc/")
CopyFileRequest if not startswith(input.path, "/etc/")
policy_data := {"containers": [{"id": "db", "args": ["/db"], "exec": [["/bin/date"]]}]}
`
	cases := []struct {
		name, policy, kind, req, want string
	}{
		{"first body gets further", simple, "ExecProcess", `{"container_id":"web","process":{"Args":["/bin/sh"]}}`,
			`ExecProcessRequest: policy.rego:7: input.process.Args[0] == "/bin/date": is undefined or false (input.process.Args[0] = "/bin/sh")`},
		{"iteration", simple, "ExecProcess", `{"container_id":"db","process":{"Args":["/bin/sh"]}}`,
			`ExecProcessRequest: policy.rego:12: input.process.Args in c.exec: is undefined or false (c.exec = [["/bin/date"]], input.process.Args = ["/bin/sh"])`},
		{"not genpolicy-shaped", simple, "CreateContainer", `{"OCI":{"Process":{"Args":["/bin/sh"]}}}`,
			`CreateContainerRequest: policy.rego:16: input.OCI.Process.Args == c.args: is undefined or false (c.args = ["/db"], input.OCI.Process.Args = ["/bin/sh"])`},
		{"rule value false", simple, "CopyFile", `{"path":"/etc/passwd","file_mode":33188}`,
			`CopyFileRequest: policy.rego:18: this rule applies and its value false denies`},
		{"default only", "package agent_policy\ndefault ReadStreamRequest := false\n", "ReadStdout", `{}`,
			`ReadStreamRequest: policy.rego:2: no rule applies, the default false does`},
		{"undefined", "package agent_policy\ndefault ReadStreamRequest := false\n", "StartContainer", `{}`,
			`StartContainerRequest: the policy has no rule StartContainerRequest (undefined)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := loadText(t, tc.policy)
			req := parse(t, tc.kind, tc.req)
			d, _ := p.Explain(context.Background(), req.Kind, req.Input)
			if d.Allowed || d.Why != tc.want {
				t.Fatalf("got allowed=%v why %q\nwant %q", d.Allowed, d.Why, tc.want)
			}
		})
	}
}
