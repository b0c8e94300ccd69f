package rpc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// TestMain lets the test binary serve as libcontainer's container init,
// exactly as cocoon-agent does when re-executed as "cocoon-agent init".
func TestMain(m *testing.M) {
	container.InitIfRequested()
	serveAgentIfRequested()
	os.Exit(m.Run())
}

// agent is the real agent on a unix socket, with its run and state dirs.
type agent struct {
	agentpb.AgentServiceService
	run, state, cgroup string
}

func startAgent(t *testing.T, policyText string) *agent { return startAgentTB(t, policyText) }

func startAgentB(b *testing.B, tweak ...func(*config.Config)) *agent {
	return startAgentTB(b, "", tweak...)
}

func startAgentTB(t testing.TB, policyText string, tweak ...func(*config.Config)) *agent {
	t.Helper()
	testenv.RequiresRoot(t)
	cfg := testagent.Config(t)
	for _, f := range tweak {
		f(&cfg)
	}
	if policyText != "" {
		cfg.PolicyFile = filepath.Join(t.TempDir(), "policy.rego")
		if err := os.WriteFile(cfg.PolicyFile, []byte(policyText), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := testagent.Start(t, cfg, daemon.Options{})
	return &agent{AgentServiceService: c.Agent, run: cfg.KataRunDir, state: cfg.StateDir, cgroup: cfg.CgroupParent}
}

// rootfs lays out busybox where the Kata runtime puts a container's rootfs.
func (a *agent) rootfs(t *testing.T, cid string) string { return a.rootfsB(t, cid) }

func (a *agent) rootfsB(t testing.TB, cid string) string {
	t.Helper()
	return testenv.KataRootfs(t, a.run, cid)
}

func spec(root string, args ...string) *agentpb.Spec {
	return &agentpb.Spec{
		Version: "1.1.0",
		Process: &agentpb.Process{Args: args, Env: []string{"PATH=/bin:/sbin"}, Cwd: "/"},
		Root:    &agentpb.Root{Path: root},
		Mounts: []*agentpb.Mount{
			{Destination: "/proc", Source: "proc", Type: "proc"},
			{Destination: "/dev", Source: "tmpfs", Type: "tmpfs", Options: []string{"nosuid", "mode=755"}},
			{Destination: "/dev/pts", Source: "devpts", Type: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		},
		Linux: &agentpb.Linux{Namespaces: []*agentpb.LinuxNamespace{{Type: "mount"}, {Type: "ipc"}, {Type: "uts"}, {Type: "pid"}}},
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// must fails the test on an rpc error: must(t)(a.Call(ctx, req)).
func must(t *testing.T) func(any, error) any {
	return func(v any, err error) any {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// run creates and starts a container running args.
func (a *agent) runContainer(t *testing.T, cid string, s *agentpb.Spec) {
	t.Helper()
	ctx := ctxT(t)
	must(t)(a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: cid, ExecId: cid, OCI: s}))
	must(t)(a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: cid}))
}

func (a *agent) readAll(t *testing.T, cid, eid string, stderr bool) string {
	t.Helper()
	out, err := testagent.ReadStream(ctxT(t), a, cid, eid, stderr)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func (a *agent) wait(t *testing.T, cid, eid string) int32 {
	t.Helper()
	return must(t)(a.WaitProcess(ctxT(t), &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: eid})).(*agentpb.WaitProcessResponse).Status
}

func (a *agent) remove(t *testing.T, cid string) {
	t.Helper()
	must(t)(a.RemoveContainer(ctxT(t), &agentpb.RemoveContainerRequest{ContainerId: cid}))
}

func TestLifecycle(t *testing.T) {
	a := startAgent(t, "")
	ctx := ctxT(t)
	must(t)(a.CreateSandbox(ctx, &agentpb.CreateSandboxRequest{Hostname: "pod", Dns: []string{"nameserver 10.0.0.10"}, SandboxId: "sb", SandboxPidns: true}))
	if _, err := a.CreateSandbox(ctx, &agentpb.CreateSandboxRequest{}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second CreateSandbox: %v", err)
	}
	resolv, err := os.ReadFile(filepath.Join(a.state, "sandbox", "resolv.conf"))
	if err != nil || string(resolv) != "nameserver 10.0.0.10\n" {
		t.Fatalf("resolv.conf %q, %v", resolv, err)
	}

	// The pod's first container: a long-lived init with a SIGTERM handler.
	s := spec(a.rootfs(t, "pause"), "sh", "-c", "trap 'exit 0' TERM; echo up; while true; do sleep 0.1; done")
	a.runContainer(t, "pause", s)
	if out := must(t)(a.ReadStdout(ctx, &agentpb.ReadStreamRequest{ContainerId: "pause", Len: 64})).(*agentpb.ReadStreamResponse); string(out.Data) != "up\n" {
		t.Fatalf("first read %q", out.Data)
	}

	// A second container shares the sandbox's PID, IPC and UTS namespaces:
	// its PID 1 is the pause container's shell, which lives as long as the
	// pod (its short-lived children are not counted: they come and go).
	s = spec(a.rootfs(t, "app"), "sh", "-c", "hostname; cat /proc/1/cmdline; exit 3")
	must(t)(a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "app", ExecId: "app", OCI: s, SandboxPidns: true}))
	must(t)(a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "app"}))
	out := a.readAll(t, "app", "app", false)
	host, pid1, _ := strings.Cut(out, "\n")
	if host != "pod" || !strings.Contains(pid1, "trap 'exit 0' TERM") {
		t.Errorf("app output %q: want the sandbox hostname and the pause container's shell as PID 1", out)
	}
	// Any number of waiters get the init's status, before or after it exits
	// (an init, unlike an exec'd process, is not forgotten once waited for).
	got := make(chan int32, 3)
	for range 3 {
		go func() {
			r, err := a.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: "app", ExecId: "app"})
			if err != nil {
				got <- -1
				return
			}
			got <- r.Status
		}()
	}
	for range 3 {
		if st := <-got; st != 3 {
			t.Errorf("exit status %d, want 3", st)
		}
	}

	t.Run("exec stdin echo", func(t *testing.T) {
		must(t)(a.ExecProcess(ctx, &agentpb.ExecProcessRequest{ContainerId: "pause", ExecId: "cat", Process: &agentpb.Process{Args: []string{"cat"}, Env: []string{"PATH=/bin"}, Cwd: "/"}}))
		w := must(t)(a.WriteStdin(ctx, &agentpb.WriteStreamRequest{ContainerId: "pause", ExecId: "cat", Data: []byte("ping\n")})).(*agentpb.WriteStreamResponse)
		if w.Len != 5 {
			t.Errorf("wrote %d", w.Len)
		}
		must(t)(a.CloseStdin(ctx, &agentpb.CloseStdinRequest{ContainerId: "pause", ExecId: "cat"}))
		if got := a.readAll(t, "pause", "cat", false); got != "ping\n" {
			t.Errorf("echo %q", got)
		}
		if st := a.wait(t, "pause", "cat"); st != 0 {
			t.Errorf("status %d", st)
		}
		if _, err := a.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: "pause", ExecId: "cat"}); status.Code(err) != codes.NotFound {
			t.Errorf("waited exec still known: %v", err)
		}
	})

	t.Run("exec tty", func(t *testing.T) {
		p := &agentpb.Process{Terminal: true, Args: []string{"sh", "-c", "read x; stty size; exit 0"}, Env: []string{"PATH=/bin"}, Cwd: "/"}
		must(t)(a.ExecProcess(ctx, &agentpb.ExecProcessRequest{ContainerId: "pause", ExecId: "tty", Process: p}))
		must(t)(a.TtyWinResize(ctx, &agentpb.TtyWinResizeRequest{ContainerId: "pause", ExecId: "tty", Row: 40, Column: 100}))
		must(t)(a.WriteStdin(ctx, &agentpb.WriteStreamRequest{ContainerId: "pause", ExecId: "tty", Data: []byte("go\n")}))
		if got := a.readAll(t, "pause", "tty", false); !strings.Contains(got, "40 100") {
			t.Errorf("tty output %q", got)
		}
		if st := a.wait(t, "pause", "tty"); st != 0 {
			t.Errorf("status %d", st)
		}
	})

	t.Run("exec signals", func(t *testing.T) {
		for _, c := range []struct {
			sig  syscall.Signal
			want int32
		}{{syscall.SIGKILL, 137}, {syscall.SIGTERM, 143}} {
			eid := fmt.Sprintf("sleep-%d", c.sig)
			must(t)(a.ExecProcess(ctx, &agentpb.ExecProcessRequest{ContainerId: "pause", ExecId: eid, Process: &agentpb.Process{Args: []string{"sleep", "100"}, Env: []string{"PATH=/bin"}, Cwd: "/"}}))
			must(t)(a.SignalProcess(ctx, &agentpb.SignalProcessRequest{ContainerId: "pause", ExecId: eid, Signal: uint32(c.sig)}))
			if st := a.wait(t, "pause", eid); st != c.want {
				t.Errorf("%v: status %d, want %d", c.sig, st, c.want)
			}
		}
	})

	t.Run("pause resume stats update", func(t *testing.T) {
		must(t)(a.PauseContainer(ctx, &agentpb.PauseContainerRequest{ContainerId: "pause"}))
		must(t)(a.ResumeContainer(ctx, &agentpb.ResumeContainerRequest{ContainerId: "pause"}))
		if _, err := a.ResumeContainer(ctx, &agentpb.ResumeContainerRequest{ContainerId: "pause"}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("resume of a running container: %v", err)
		}
		st := must(t)(a.StatsContainer(ctx, &agentpb.StatsContainerRequest{ContainerId: "pause"})).(*agentpb.StatsContainerResponse)
		cg := st.GetCgroupStats()
		if cg.GetCpuStats().GetCpuUsage().GetTotalUsage() == 0 || cg.GetMemoryStats().GetUsage().GetUsage() == 0 || cg.GetPidsStats().GetCurrent() == 0 {
			t.Errorf("stats look empty: %v", cg)
		}
		must(t)(a.UpdateContainer(ctx, &agentpb.UpdateContainerRequest{ContainerId: "pause", Resources: &agentpb.LinuxResources{Pids: &agentpb.LinuxPids{Limit: 77}}}))
		st = must(t)(a.StatsContainer(ctx, &agentpb.StatsContainerRequest{ContainerId: "pause"})).(*agentpb.StatsContainerResponse)
		if l := st.GetCgroupStats().GetPidsStats().GetLimit(); l != 77 {
			t.Errorf("pids limit after update = %d", l)
		}
	})

	t.Run("OOM", func(t *testing.T) {
		oom := make(chan string, 1)
		go func() {
			ev, err := a.GetOOMEvent(ctx, &agentpb.GetOOMEventRequest{})
			if err != nil {
				oom <- "error: " + err.Error()
				return
			}
			oom <- ev.ContainerId
		}()
		s := spec(a.rootfs(t, "hog"), "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
		s.Linux.Resources = &agentpb.LinuxResources{Memory: &agentpb.LinuxMemory{Limit: 32 << 20}}
		a.runContainer(t, "hog", s)
		if st := a.wait(t, "hog", ""); st != 137 {
			t.Errorf("hog status %d, want 137 (OOM kill)", st)
		}
		select {
		case id := <-oom:
			if id != "hog" {
				t.Errorf("OOM event %q", id)
			}
		case <-time.After(20 * time.Second):
			t.Error("no OOM event")
		}
		a.remove(t, "hog")
	})

	t.Run("termination log", func(t *testing.T) {
		msg := filepath.Join(a.run, "shared", "containers", "term-log")
		if err := os.WriteFile(msg, nil, 0o666); err != nil {
			t.Fatal(err)
		}
		s := spec(a.rootfs(t, "term"), "sh", "-c", "echo bye > /dev/termination-log")
		s.Annotations = map[string]string{container.TerminationPathAnnotation: "/dev/termination-log"}
		s.Mounts = append(s.Mounts, &agentpb.Mount{Destination: "/dev/termination-log", Source: msg, Type: "bind", Options: []string{"rbind", "rw"}})
		a.runContainer(t, "term", s)
		a.wait(t, "term", "")
		d := must(t)(a.GetDiagnosticData(ctx, &agentpb.GetDiagnosticDataRequest{LogType: "termination_log", ContainerId: "term"})).(*agentpb.GetDiagnosticDataResponse)
		if d.Data != "bye\n" {
			t.Errorf("termination log %q", d.Data)
		}
		a.remove(t, "term")
	})

	// SIGTERM to an init without a handler ends in SIGKILL, as in Kata.
	a.runContainer(t, "sleeper", spec(a.rootfs(t, "sleeper"), "sleep", "1000"))
	must(t)(a.SignalProcess(ctx, &agentpb.SignalProcessRequest{ContainerId: "sleeper", Signal: uint32(syscall.SIGTERM)}))
	if st := a.wait(t, "sleeper", ""); st != 137 {
		t.Errorf("init SIGTERM status %d, want 137; stderr %q", st, a.readAll(t, "sleeper", "", true))
	}
	a.remove(t, "sleeper")

	// SIGKILL to every process, then the runtime's teardown.
	must(t)(a.SignalProcess(ctx, &agentpb.SignalProcessRequest{ContainerId: "pause", Signal: uint32(syscall.SIGKILL)}))
	if st := a.wait(t, "pause", ""); st != 137 {
		t.Errorf("pause status %d", st)
	}
	must(t)(a.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: "app", Timeout: 5}))
	must(t)(a.DestroySandbox(ctx, &agentpb.DestroySandboxRequest{}))
	if ids := containerDirs(t, a); len(ids) != 0 {
		t.Errorf("state left after destroy: %v", ids)
	}
	assertNoMountsUnder(t, a.state)
}

func containerDirs(t *testing.T, a *agent) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(a.state, "containers"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func assertNoMountsUnder(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			t.Errorf("mount left behind: %s", f[4])
		}
	}
}

// A policy that denies reading stdout must not block the workload: the
// agent drains the pipe and the reader sees EOF.
func TestDeniedReadDrains(t *testing.T) {
	allow, err := policy.Builtin(policy.AllowAll)
	if err != nil {
		t.Fatal(err)
	}
	deny := strings.Replace(allow, "default ReadStreamRequest := true", "default ReadStreamRequest := false", 1)
	if deny == allow {
		t.Fatal("allow-all policy has no ReadStreamRequest default to flip")
	}
	a := startAgent(t, deny)
	ctx := ctxT(t)
	a.runContainer(t, "chatty", spec(a.rootfs(t, "chatty"), "sh", "-c", "head -c 10485760 /dev/zero"))
	r := must(t)(a.ReadStdout(ctx, &agentpb.ReadStreamRequest{ContainerId: "chatty", Len: 32 << 10})).(*agentpb.ReadStreamResponse)
	if len(r.Data) != 0 {
		t.Fatalf("denied read returned %d bytes", len(r.Data))
	}
	if st := a.wait(t, "chatty", ""); st != 0 {
		t.Fatalf("status %d, want 0: the workload blocked or failed", st)
	}
	a.remove(t, "chatty")
}
