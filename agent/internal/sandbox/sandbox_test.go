package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/stream"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

func TestMain(m *testing.M) {
	container.InitIfRequested()
	os.Exit(m.Run())
}

type pod struct {
	*sandbox.Sandbox
	run, state, cgroup string
}

func newPod(t *testing.T) *pod { return newPodWith(t, nil) }

// newPodWith is newPod with an environment unsealer (nil: none).
func newPodWith(t *testing.T, unseal func(context.Context, []string) ([]string, error)) *pod {
	t.Helper()
	testenv.RequiresRoot(t)
	dir := t.TempDir()
	p := &pod{run: filepath.Join(dir, "run"), state: filepath.Join(dir, "state"), cgroup: testenv.CgroupParent(t)}
	sb, err := sandbox.New(sandbox.Options{KataRunDir: p.run, StateDir: p.state, CgroupParent: p.cgroup, UnsealEnv: unseal})
	if err != nil {
		t.Fatal(err)
	}
	p.Sandbox = sb
	t.Cleanup(func() {
		if err := sb.Destroy(context.Background()); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	return p
}

// rootfs lays out a busybox rootfs where the Kata runtime puts it.
func (p *pod) rootfs(t *testing.T, cid string) string {
	t.Helper()
	return testenv.KataRootfs(t, p.run, cid)
}

func specFor(root string, args ...string) *specs.Spec {
	return &specs.Spec{
		Version: "1.1.0",
		Process: &specs.Process{Args: args, Env: []string{"PATH=/bin:/sbin"}, Cwd: "/"},
		Root:    &specs.Root{Path: root},
		Mounts: []specs.Mount{
			{Destination: "/proc", Source: "proc", Type: "proc"},
			{Destination: "/dev", Source: "tmpfs", Type: "tmpfs", Options: []string{"nosuid", "mode=755"}},
		},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: "mount"}, {Type: "ipc"}, {Type: "uts"}, {Type: "pid"}}},
	}
}

func readAll(t *testing.T, io *stream.IO, w stream.Which) string {
	t.Helper()
	var b strings.Builder
	for {
		d, err := io.Read(w, 32<<10)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) == 0 {
			return b.String()
		}
		b.Write(d)
	}
}

func TestContainerRunsAndExits(t *testing.T) {
	p := newPod(t)
	ctx := context.Background()
	if err := p.Create(ctx, sandbox.Config{ID: "pod1", Hostname: "podhost", DNS: []string{"nameserver 10.0.0.10"}}); err != nil {
		t.Fatal(err)
	}
	c, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: specFor(p.rootfs(t, "c1"), "sh", "-c", "echo hello; hostname; echo err >&2; exit 3")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c.Init().IO, stream.Stdout); got != "hello\npodhost\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := readAll(t, c.Init().IO, stream.Stderr); got != "err\n" {
		t.Errorf("stderr = %q", got)
	}
	st, err := c.Init().Wait(ctx)
	if err != nil || st != 3 {
		t.Fatalf("status %d, %v", st, err)
	}
	if err := p.Remove(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Container("c1"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("removed container: %v", err)
	}
}

func TestSigtermWithoutHandlerKills(t *testing.T) {
	p := newPod(t)
	ctx := context.Background()
	c, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: specFor(p.rootfs(t, "c1"), "sleep", "1000")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(ctx, "", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Init().Wait(ctx); st != 137 {
		t.Fatalf("status %d, want 137", st)
	}
}
