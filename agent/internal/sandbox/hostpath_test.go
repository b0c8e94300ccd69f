package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
)

// hostPath volumes of /dev, /sys and /proc (and below) stay in the spec with
// their original source (kata virtcontainers/container.go:460 and :497 skip
// them when sharing, mount.go:33 and :60 name them): the container gets the
// guest's path of the same name.
func TestHostPathGuestSystemBinds(t *testing.T) {
	p := newPod(t)
	s := specFor(p.rootfs(t, "c1"), "sh", "-c", "test -c /hostdev/null && cat /hostkernel/ostype && test -d /hostsys/kernel && echo ok")
	bindAt(s, "/dev", "/hostdev")
	bindAt(s, "/proc/sys/kernel", "/hostkernel", "ro")
	bindAt(s, "/sys", "/hostsys", "ro")
	if got := p.output(t, sandbox.ContainerRequest{ID: "c1", Spec: s}); got != "Linux\nok\n" {
		t.Fatalf("container printed %q", got)
	}
}

// What a guest system path leads to is checked after symlinks: /proc's
// magic links reach the agent's own root, and the agent's private
// directories stay private wherever they are.
func TestHostPathGuestSystemRefusals(t *testing.T) {
	p := newPod(t)
	ctx := context.Background()
	for name, c := range map[string]struct {
		src  string
		want error
	}{
		"the agent's root through /proc": {"/proc/self/root", errdefs.ErrPermissionDenied},
		"the agent's working dir":        {"/proc/self/cwd", errdefs.ErrPermissionDenied},
		"dot-dot out of /dev":            {"/dev/../etc", errdefs.ErrInvalidArgument},
		"a device the guest lacks":       {"/dev/cocoon-no-such-device", errdefs.ErrInvalidArgument},
	} {
		t.Run(name, func(t *testing.T) {
			s := bindAt(specFor(p.rootfs(t, "c1"), "true"), c.src, "/mnt/x")
			_, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: s})
			if !errors.Is(err, c.want) {
				if err == nil {
					_ = p.Remove(ctx, "c1")
				}
				t.Fatalf("bind of %s: %v, want %v", c.src, err, c.want)
			}
		})
	}
	t.Run("state dir under /dev", func(t *testing.T) {
		state := filepath.Join("/dev/shm", fmt.Sprintf("cocoon-test-state-%d", time.Now().UnixNano()))
		t.Cleanup(func() { os.RemoveAll(state) })
		q := newPodOpts(t, func(o *sandbox.Options) { o.StateDir = state })
		s := bindAt(specFor(q.rootfs(t, "c1"), "true"), "/dev/shm", "/mnt/x")
		_, err := q.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: s})
		if !errors.Is(err, errdefs.ErrPermissionDenied) {
			t.Fatalf("bind of the /dev directory holding the state dir: %v", err)
		}
	})
}
