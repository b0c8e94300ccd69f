package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
)

// A container init waits at libcontainer's exec fifo on the thread that
// later execs the workload. That must be the thread-group leader: an exec
// from another thread first replaces the leader, and meanwhile
// /proc/<pid>/ns/* do not resolve, so an ExecProcess racing the start
// failed with "failed to open /proc/<pid>/ns/ipc". Once Start returns the
// workload runs: the namespaces resolve, the executable is the workload's,
// and an exec joins it. Several containers, as the thread runc's Go init
// ran on used to vary from one start to the next.
func TestInitExecsFromLeaderAndStartWaitsForIt(t *testing.T) {
	p := newPod(t)
	ctx := context.Background()
	for i := range 5 {
		id := fmt.Sprintf("c%d", i)
		c, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: id, Spec: specFor(p.rootfs(t, id), "sleep", "1000")})
		if err != nil {
			t.Fatal(err)
		}
		pid := c.Init().Pid()
		tid := fifoWaiter(t, pid)
		if tid != pid {
			t.Errorf("%s: init waits at the exec fifo on thread %d, not on its leader %d", id, tid, pid)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/ipc", pid))
		if err != nil {
			t.Fatalf("%s: after Start: %v", id, err)
		}
		f.Close()
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || !strings.HasSuffix(exe, "busybox") {
			t.Fatalf("%s: after Start the init runs %q (%v), want busybox", id, exe, err)
		}
		e, err := p.Exec(ctx, sandbox.ExecRequest{ContainerID: id, ExecID: "e", Process: specFor("", "true").Process})
		if err != nil {
			t.Fatalf("%s: exec right after Start: %v", id, err)
		}
		if st, err := e.Wait(ctx); err != nil || st != 0 {
			t.Fatalf("%s: exec status %d, %v", id, st, err)
		}
		if err := c.Signal(ctx, "", syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := p.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

// fifoWaiter returns the thread of pid that is blocked in openat (the init
// opening its exec fifo), waiting up to ten seconds for it to get there.
// libcontainer's create returns when the init closes its sync pipe, a few
// steps before that openat, and the kernel has no event for "a thread
// entered open(2)" short of tracing the init (which would steal its wait
// status from the container package): so this polls the thread's state,
// bounded, and orders nothing by time.
func fifoWaiter(t *testing.T, pid int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
			if err != nil {
				continue
			}
			nr, _, _ := strings.Cut(string(data), " ")
			if nr == strconv.Itoa(unix.SYS_OPENAT) {
				tid, _ := strconv.Atoi(task.Name())
				return tid
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("init %d never blocked in openat", pid)
	return 0
}
