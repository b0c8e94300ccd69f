package rpc_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/internal/convert"
	"github.com/cocoon-tee/cocoon/agent/internal/reaper"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Bad requests get a clear status and leave nothing behind.
func TestCreateContainerBadInput(t *testing.T) {
	a := startAgent(t, "")
	ctx := ctxT(t)
	root := a.rootfs(t, "good")
	link := filepath.Join(a.run, "shared", "escape")
	if err := os.Symlink("/", link); err != nil {
		t.Fatal(err)
	}
	manyEnv := make([]string, convert.MaxEnv+1)
	for i := range manyEnv {
		manyEnv[i] = "A=b"
	}
	with := func(f func(s *agentpb.Spec)) *agentpb.Spec {
		s := spec(root, "true")
		f(s)
		return s
	}
	cases := []struct {
		name string
		req  *agentpb.CreateContainerRequest
		code codes.Code
	}{
		{"slash in id", &agentpb.CreateContainerRequest{ContainerId: "a/b", OCI: spec(root, "true")}, codes.InvalidArgument},
		{"dot dot id", &agentpb.CreateContainerRequest{ContainerId: "..", OCI: spec(root, "true")}, codes.InvalidArgument},
		{"NUL in id", &agentpb.CreateContainerRequest{ContainerId: "a\x00b", OCI: spec(root, "true")}, codes.InvalidArgument},
		{"long id", &agentpb.CreateContainerRequest{ContainerId: strings.Repeat("x", 257), OCI: spec(root, "true")}, codes.InvalidArgument},
		{"bad exec id", &agentpb.CreateContainerRequest{ContainerId: "c", ExecId: "../x", OCI: spec(root, "true")}, codes.InvalidArgument},
		{"nil OCI", &agentpb.CreateContainerRequest{ContainerId: "c"}, codes.InvalidArgument},
		{"no process", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) { s.Process = nil })}, codes.InvalidArgument},
		{"no args", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) { s.Process.Args = nil })}, codes.InvalidArgument},
		{"root outside run dir", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) { s.Root.Path = "/" })}, codes.PermissionDenied},
		{"root symlink escapes", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) { s.Root.Path = link })}, codes.PermissionDenied},
		{"root dot dot", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) { s.Root.Path = a.run + "/../../etc" })}, codes.InvalidArgument},
		{"root missing", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) { s.Root.Path = a.run + "/nope" })}, codes.InvalidArgument},
		{"bind source outside", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) {
			s.Mounts = append(s.Mounts, &agentpb.Mount{Destination: "/host", Source: "/etc", Type: "bind", Options: []string{"rbind"}})
		})}, codes.PermissionDenied},
		{"relative destination", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) {
			s.Mounts = append(s.Mounts, &agentpb.Mount{Destination: "tmp", Source: "tmpfs", Type: "tmpfs"})
		})}, codes.InvalidArgument},
		{"unknown storage driver", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: spec(root, "true"),
			Storages: []*agentpb.Storage{{Driver: "nope", MountPoint: a.run + "/m"}}}, codes.InvalidArgument},
		{"libcontainer rejects namespace", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, &agentpb.LinuxNamespace{Type: "bogus"})
		})}, codes.InvalidArgument},
		{"libcontainer rejects sysctl", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) {
			s.Linux.Sysctl = map[string]string{"kernel.hostname": "x", "vm.swappiness": "1"}
		})}, codes.InvalidArgument},
		{"too many env", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) { s.Process.Env = manyEnv })}, codes.InvalidArgument},
		{"bad OOM score", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) { s.Process.OOMScoreAdj = 5000 })}, codes.InvalidArgument},
		{"unknown user", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: spec(root, "true"), StringUser: &agentpb.StringUser{Uid: "nobody-here"}}, codes.InvalidArgument},
		// A spec missing a section once panicked after its storages were
		// mounted; assertClean below finds any mount left behind.
		{"no linux, with a storage", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) { s.Linux = nil }),
			Storages: []*agentpb.Storage{{Driver: "ephemeral", Source: "tmpfs", Fstype: "tmpfs", MountPoint: a.run + "/sandbox/ephemeral/x"}}}, codes.InvalidArgument},
		{"no root, with a storage", &agentpb.CreateContainerRequest{ContainerId: "c", OCI: with(func(s *agentpb.Spec) { s.Root = nil }),
			Storages: []*agentpb.Storage{{Driver: "ephemeral", Source: "tmpfs", Fstype: "tmpfs", MountPoint: a.run + "/sandbox/ephemeral/y"}}}, codes.InvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := a.CreateContainer(ctx, c.req)
			if status.Code(err) != c.code {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, c.code)
			}
			if msg := status.Convert(err).Message(); msg == "" {
				t.Error("empty error message")
			}
		})
	}
	a.assertClean(t)

	// A duplicate id is refused and the first container is unharmed.
	a.runContainer(t, "dup", spec(a.rootfs(t, "dup"), "sleep", "100"))
	if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "dup", OCI: spec(root, "true")}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "nope"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown container: %v", err)
	}
	if _, err := a.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: "dup", ExecId: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown exec: %v", err)
	}
	if _, err := a.SignalProcess(ctx, &agentpb.SignalProcessRequest{ContainerId: "dup", Signal: 99}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad signal: %v", err)
	}
	if _, err := a.ExecProcess(ctx, &agentpb.ExecProcessRequest{ContainerId: "dup", ExecId: "x"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("exec without process: %v", err)
	}
	if _, err := a.TtyWinResize(ctx, &agentpb.TtyWinResizeRequest{ContainerId: "dup", Row: 10, Column: 10}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("resize without tty: %v", err)
	}
	if _, err := a.GetDiagnosticData(ctx, &agentpb.GetDiagnosticDataRequest{ContainerId: "dup", LogType: "core"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown diagnostic: %v", err)
	}
	if d, err := a.GetDiagnosticData(ctx, &agentpb.GetDiagnosticDataRequest{ContainerId: "dup", LogType: "termination_log"}); err != nil || d.Data != "" {
		t.Errorf("termination log without annotation: %q %v", d.GetData(), err)
	}
	if st := a.signalKillWait(t, "dup"); st != 137 {
		t.Errorf("dup status %d", st)
	}
	a.remove(t, "dup")
	a.assertClean(t)
}

func (a *agent) signalKillWait(t *testing.T, cid string) int32 {
	t.Helper()
	must(t)(a.SignalProcess(ctxT(t), &agentpb.SignalProcessRequest{ContainerId: cid, Signal: 9}))
	return a.wait(t, cid, "")
}

// assertClean checks that no container state, mount or cgroup is left.
func (a *agent) assertClean(t *testing.T) {
	t.Helper()
	if ids := containerDirs(t, a); len(ids) != 0 {
		t.Errorf("container state left: %v", ids)
	}
	assertNoMountsUnder(t, a.run)
	assertNoMountsUnder(t, filepath.Join(a.state, "containers"))
	for _, dir := range testagent.CgroupDirs(a.cgroup) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() {
				t.Errorf("cgroup left: %s/%s", dir, e.Name())
			}
		}
	}
}

// 100 create/start/wait/remove cycles leave no mounts, cgroups, state,
// zombies, goroutines or descriptors behind.
func TestNoLeaks(t *testing.T) {
	a := startAgent(t, "")
	ctx := ctxT(t)
	root := a.rootfs(t, "leak")
	run := func(i int) {
		cid := "leak-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		a.runContainer(t, cid, spec(root, "sh", "-c", "echo hi"))
		if out := a.readAll(t, cid, "", false); out != "hi\n" {
			t.Fatalf("output %q", out)
		}
		if st := a.wait(t, cid, ""); st != 0 {
			t.Fatalf("status %d", st)
		}
		must(t)(a.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: cid}))
	}
	// Warm up lazily started goroutines and caches. A goroutine of the
	// warm-up still unwinding only raises the baseline by one; a leak per
	// container shows up a hundred times over below.
	run(0)
	g0, fd0 := runtime.NumGoroutine(), openFDs(t)
	for i := 1; i <= 100; i++ {
		run(i)
	}
	a.assertClean(t)
	var g, fd int
	// A bounded poll, because the event it would wait on is not reported:
	// ttrpc runs each call in a goroutine of its own that hands the reply
	// to the connection's writer and only then returns (ttrpc v1.2.10
	// services.go:112-121), so the client can hold the reply while that
	// goroutine is still unwinding, with any descriptor it has yet to
	// close. Neither ttrpc nor agent/server says when a call's goroutine
	// has returned; the poll ends as soon as the counts settle.
	for range 50 {
		g, fd = runtime.NumGoroutine(), openFDs(t)
		if g <= g0+2 && fd <= fd0+2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g > g0+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines %d -> %d\n%s", g0, g, buf[:runtime.Stack(buf, true)])
	}
	if fd > fd0+2 {
		t.Errorf("open descriptors %d -> %d", fd0, fd)
	}
	if z := reaper.ZombieChildren(); len(z) != 0 {
		t.Errorf("zombies: %v", z)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
