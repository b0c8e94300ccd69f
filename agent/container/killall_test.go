package container

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// newTestContainer creates a busybox container running args, with its
// state, rootfs and cgroup parent the test's own. Without pidNS it shares
// the test's PID namespace, so what it forks can outlive its init.
func newTestContainer(t *testing.T, id string, pidNS bool, args ...string) *Container {
	t.Helper()
	testenv.RequiresRoot(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	testenv.BusyboxRootfs(t, rootfs)
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}}
	if pidNS {
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	spec := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs},
		Process: &specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}},
		Linux:   &specs.Linux{Namespaces: ns},
	}
	c, err := Create(context.Background(), Options{ID: id, Spec: spec, StateRoot: t.TempDir(), CgroupParent: testenv.CgroupParent(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Destroy(ctx); err != nil {
			t.Error(err)
		}
	})
	return c
}

// awaitExit waits for pid to exit through a pidfd, which becomes readable
// when the process ends.
func awaitExit(t *testing.T, pid int, limit time.Duration) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return err == unix.ESRCH
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(limit.Milliseconds()))
	return err == nil && n == 1
}

// A process the workload leaves behind in the container's cgroup when the
// init exits (possible when the container shares the pod's PID namespace)
// is killed by KillAll like any other.
func TestKillAllKillsWhatOutlivesTheInit(t *testing.T) {
	c := newTestContainer(t, "killall-leftover", false, "/bin/sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & exit 0")
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Wait(ctx, ""); err != nil || st != 0 {
		t.Fatalf("init: status %d, %v", st, err)
	}
	pids, err := c.lc.Processes()
	if err != nil || len(pids) != 1 {
		t.Fatalf("processes left in the cgroup: %v, %v; want the sleep", pids, err)
	}
	if err := c.KillAll(); err != nil {
		t.Fatal(err)
	}
	if !awaitExit(t, pids[0], 10*time.Second) {
		t.Fatalf("pid %d outlived KillAll", pids[0])
	}
}

// Once every process of the container has exited, KillAll has nothing to
// do, and the container can still be killed again and destroyed.
func TestKillAllAfterEverythingExited(t *testing.T) {
	c := newTestContainer(t, "killall-exited", true, "/bin/true")
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Wait(ctx, ""); err != nil || st != 0 {
		t.Fatalf("init: status %d, %v", st, err)
	}
	for range 2 {
		if err := c.KillAll(); err != nil {
			t.Fatal(err)
		}
	}
	if pids, err := c.lc.Processes(); err != nil || len(pids) != 0 {
		t.Fatalf("processes: %v, %v", pids, err)
	}
}
