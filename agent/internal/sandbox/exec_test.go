package sandbox_test

import (
	"context"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/stream"
)

// Exec checks what CreateContainer checks for its init: the exec id, the
// process, and the string user, resolved against the container's rootfs.
// Waiting for an exec'd process forgets it; a signal outside 1-64 is refused.
func TestExec(t *testing.T) {
	p := newPod(t)
	ctx := context.Background()
	c, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: specFor(p.rootfs(t, "c1"), "sleep", "1000")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	proc := func() *specs.Process {
		return &specs.Process{Args: []string{"id", "-u"}, Env: []string{"PATH=/bin:/sbin"}, Cwd: "/", User: specs.User{UID: 1234}}
	}
	// Each request is refused as invalid, for the reason its message names.
	for want, r := range map[string]sandbox.ExecRequest{
		"invalid container id": {ContainerID: "nope", ExecID: "e", Process: proc()},
		"exec":                 {ContainerID: "c1", ExecID: "../e", Process: proc()},
		"process is null":      {ContainerID: "c1", ExecID: "e"},
		"nosuchuser":           {ContainerID: "c1", ExecID: "e", Process: proc(), StringUser: &container.StringUser{UID: "nosuchuser"}},
	} {
		if _, err := p.Exec(ctx, r); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	e, err := p.Exec(ctx, sandbox.ExecRequest{ContainerID: "c1", ExecID: "e1", Process: proc(), StringUser: &container.StringUser{UID: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if out := readAll(t, e.IO, stream.Stdout); out != "0\n" {
		t.Errorf("exec ran as %q, want the string user's uid 0 over the process's 1234", out)
	}
	if st, err := c.Wait(ctx, "e1"); err != nil || st != 0 {
		t.Fatalf("wait: %d %v", st, err)
	}
	if _, err := c.Process("e1"); !errdefs.IsNotFound(err) {
		t.Errorf("waited exec still known: %v", err)
	}
	for _, sig := range []syscall.Signal{0, 65} {
		if err := c.Signal(ctx, "", sig); !errdefs.IsInvalidArgument(err) {
			t.Errorf("signal %d: %v", sig, err)
		}
	}
}
