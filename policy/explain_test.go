package policy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// appRequest is the CreateContainerRequest the genpolicy-style test policy
// allows as its container 1 ("app").
func appRequest() *agentpb.CreateContainerRequest {
	return &agentpb.CreateContainerRequest{
		ContainerId: "app1",
		OCI: &agentpb.Spec{
			Version: "1.1.0",
			Annotations: map[string]string{
				"io.kubernetes.cri.container-type": "container",
				"io.kubernetes.cri.container-name": "app",
				"io.kubernetes.cri.image-name":     "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
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

// The agent's PERMISSION_DENIED for CreateContainer names the policy
// container that came closest and the field that differed, ahead of the
// rules' print output; an allowed request is unaffected.
func TestCreateContainerDenialNamesClosestField(t *testing.T) {
	text := readFile(t, "explain/testdata/genpolicy-style.rego")
	e := policy.NewEngine(load(t, text), nil, nil)
	ctx := context.Background()
	finish, err := e.Gate(ctx, "CreateContainer", appRequest())
	if err != nil {
		t.Fatalf("unaltered request: %v", err)
	}
	finish(errOpFailed)

	evil := appRequest()
	evil.OCI.Process.Args = []string{"/bin/echo", "sh"}
	_, err = e.Gate(ctx, "CreateContainer", evil)
	if !errdefs.IsPermissionDenied(err) {
		t.Fatalf("altered args: got %v, want permission denied", err)
	}
	want := `CreateContainerRequest is blocked by policy: CreateContainerRequest: closest policy_data.containers[1]`
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), `OCI.Process.Args[1]: got "sh", policy allows "hello"`) {
		t.Fatalf("message %q lacks the closest container and the field", err.Error())
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("message spans lines: %q", err.Error())
	}
}
