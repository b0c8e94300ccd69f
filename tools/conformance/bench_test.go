package conformance_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/conformance"
)

// benchPod is an agent with a sandbox and one prepared root file system.
type benchPod struct {
	h   *conformance.Harness
	cid string
}

func newBenchPod(b *testing.B, cid string) benchPod {
	return newBenchPodAt(b, startAgent(b), cid)
}

func newBenchPodAt(b *testing.B, a agent, cid string) benchPod {
	ctx := context.Background()
	h, err := conformance.NewHarness(ctx, conformance.Config{Addr: a.addr, KataRunDir: a.runDir})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	for _, s := range conformance.Scenarios(conformance.Config{}) {
		if s.Name == "pod/create-sandbox" {
			if r := conformance.RunOne(ctx, h, s, 0); r.Err != nil {
				b.Logf("sandbox set-up: %v", r.Err) // containers still run without guest details
			}
		}
	}
	return benchPod{h: h, cid: cid}
}

// BenchmarkAgentRunTrue is create + start + wait + remove of /bin/true
// through the agent's API, the same container id and root file system
// every time (what BenchmarkRuncRunTrue does with runc).
func BenchmarkAgentRunTrue(b *testing.B) {
	p := newBenchPod(b, "bench-true")
	ctx := context.Background()
	// The first create writes the root file system; later ones reuse it.
	if err := p.h.Create(ctx, p.cid, []string{"/bin/true"}); err != nil {
		b.Fatal(err)
	}
	if _, err := p.h.Agent.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: p.cid}); err != nil {
		b.Fatal(err)
	}
	spec := p.h.Spec(p.cid, []string{"/bin/true"})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.h.Agent.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: p.cid, ExecId: p.cid, OCI: spec}); err != nil {
			b.Fatal(err)
		}
		if err := p.h.Start(ctx, p.cid); err != nil {
			b.Fatal(err)
		}
		if st, err := p.h.Wait(ctx, p.cid, p.cid); err != nil || st != 0 {
			b.Fatalf("status %d: %v", st, err)
		}
		if _, err := p.h.Agent.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: p.cid}); err != nil {
			b.Fatal(err)
		}
	}
}

// agentBuild is how the Makefile builds bin/cocoon-agent (AGENT_TAGS and
// LDFLAGS there): the binary libcontainer re-executes as every container's
// init is then the one a guest runs, not this test binary with its test
// dependencies.
var agentBuild = []string{"build", "-trimpath", "-tags", "osusergo,netgo,containers_image_openpgp,seccomp,nethttpomithttp2",
	"-ldflags", "-s -w -extldflags=-static"}

// startAgentProcess builds the agent and runs it as a process of its own
// (as in a guest, its CPU, threads and garbage collector are not shared with
// the client) on a unix socket, with its directories and cgroup parent the
// test's own. It returns once the agent logs that it is serving, with the
// agent's pid.
func startAgentProcess(b *testing.B) (agent, int) {
	b.Helper()
	testenv.RequiresRoot(b)
	dir := b.TempDir()
	// The binary's directory must not contain the state directory: the
	// read-only overlayfs through which libcontainer hands the binary to
	// each container init refuses nested layers, and libcontainer then
	// copies the whole binary for every container instead.
	bin := filepath.Join(b.TempDir(), "cocoon-agent")
	build := exec.Command("go", append(agentBuild, "-o", bin, "github.com/cocoon-tee/cocoon/agent/cmd/cocoon-agent")...)
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	a := agent{addr: "unix://" + filepath.Join(dir, "agent.sock"), runDir: filepath.Join(dir, "run")}
	conf := filepath.Join(dir, "agent.toml")
	toml := fmt.Sprintf("kata_run_dir = %q\nstate_dir = %q\ncgroup_parent = %q\ndecision_log = %q\n",
		a.runDir, filepath.Join(dir, "state"), testenv.CgroupParent(b), filepath.Join(dir, "decisions.log"))
	if err := os.WriteFile(conf, []byte(toml), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", conf, "--addr", a.addr, "--log-level", "info")
	logs, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	// Every log line is read, so that the agent never blocks on a full
	// pipe; the first "agent serving" releases the benchmark.
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			if serving != nil && strings.Contains(sc.Text(), `"msg":"agent serving"`) {
				close(serving)
				serving = nil
			}
		}
	}()
	select {
	case <-serving:
	case <-time.After(time.Minute):
		b.Fatal("the agent did not log \"agent serving\" within a minute")
	}
	return a, cmd.Process.Pid
}

// cpuTime is the CPU time (user + system) a process has used, with that of
// the children it has waited for: for the agent, the container inits and
// runc's intermediate processes it reaps. Fields 14-17 of /proc/<pid>/stat,
// in USER_HZ.
func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+2:])) // f[0] is field 3, the state
	var ticks int64
	for _, k := range []int{11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100
}

// runcBaseline prepares a pod whose container rootfs exists (created and
// removed once through the agent) and a runc bundle over the same rootfs.
func runcBaseline(b *testing.B, a agent, cid string) (runc string, p benchPod, bundle, state string) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		b.Fatalf("runc is needed for the baseline (apt-get install runc): %v", err)
	}
	p = newBenchPodAt(b, a, cid)
	ctx := context.Background()
	if err := p.h.Create(ctx, p.cid, []string{"/bin/true"}); err != nil {
		b.Fatal(err)
	}
	if _, err := p.h.Agent.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: p.cid}); err != nil {
		b.Fatal(err)
	}
	bundle, state = b.TempDir(), b.TempDir()
	writeRuncBundle(b, bundle, p.h.RootfsPath(p.cid), p.h.SandboxShm())
	return runc, p, bundle, state
}

// BenchmarkRuncRunTrue is `runc run` of /bin/true on a bundle with the same
// root file system, namespaces and mounts as BenchmarkAgentRunTrue's spec.
func BenchmarkRuncRunTrue(b *testing.B) {
	runc, _, bundle, state := runcBaseline(b, startAgent(b), "bench-runc")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(runc, "--root", state, "run", "--bundle", bundle, "bench-"+strconv.Itoa(i))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("runc run: %v: %s", err, out)
		}
	}
}

// BenchmarkRunTrueInterleaved alternates one agent container and one
// `runc run` per iteration, so that both see the same machine load; on a
// shared machine its ratio is the number to quote. The agent is the
// Makefile's build of cocoon-agent in a process of its own. Its time is
// also reported per call (create, start, wait, remove), to show where it
// goes, and both sides' CPU time per container.
func BenchmarkRunTrueInterleaved(b *testing.B) {
	a, pid := startAgentProcess(b)
	runc, p, bundle, state := runcBaseline(b, a, "bench-mix")
	ctx := context.Background()
	spec := p.h.Spec(p.cid, []string{"/bin/true"})
	var phases [4]time.Duration // create, start, wait, remove
	var runcTime, runcCPU time.Duration
	agentCPU := cpuTime(b, pid)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := p.h.Agent.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: p.cid, ExecId: p.cid, OCI: spec}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := p.h.Start(ctx, p.cid); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if st, err := p.h.Wait(ctx, p.cid, p.cid); err != nil || st != 0 {
			b.Fatalf("status %d: %v", st, err)
		}
		t3 := time.Now()
		if _, err := p.h.Agent.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: p.cid}); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		cmd := exec.Command(runc, "--root", state, "run", "--bundle", bundle, "mix-"+strconv.Itoa(i))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("runc run: %v: %s", err, out)
		}
		// runc waits for its container's init, so its rusage covers it.
		runcCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		phases[0] += t1.Sub(t0)
		phases[1] += t2.Sub(t1)
		phases[2] += t3.Sub(t2)
		phases[3] += t4.Sub(t3)
		runcTime += time.Since(t4)
	}
	agentCPU = cpuTime(b, pid) - agentCPU
	agentTime := phases[0] + phases[1] + phases[2] + phases[3]
	perOp := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	b.ReportMetric(perOp(agentTime), "agent-ms/op")
	b.ReportMetric(perOp(runcTime), "runc-ms/op")
	b.ReportMetric(float64(agentTime)/float64(runcTime), "agent/runc")
	// CPU time depends far less on the machine's load than wall time: the
	// agent's (with the container inits it reaps) against runc's (with its
	// init).
	b.ReportMetric(perOp(agentCPU), "agent-cpu-ms/op")
	b.ReportMetric(perOp(runcCPU), "runc-cpu-ms/op")
	for i, name := range []string{"create", "start", "wait", "remove"} {
		b.ReportMetric(perOp(phases[i]), name+"-ms/op")
	}
}

// writeRuncBundle writes a config.json equivalent to Harness.Spec,
// including the bind of the sandbox's shm when there is one.
func writeRuncBundle(b *testing.B, bundle, rootfs, shm string) {
	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
	s := specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: []string{"/bin/true"}, Env: []string{"PATH=/bin"}, Cwd: "/", NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
		},
		Root:     &specs.Root{Path: rootfs},
		Hostname: "bench",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces:    []specs.LinuxNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}},
			MaskedPaths:   []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if shm != "" {
		s.Mounts[3] = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: shm, Options: []string{"rbind"}}
	}
	data, err := json.Marshal(s)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		b.Fatal(err)
	}
}

// streamBytes is how much one iteration of the stream benchmarks moves.
const streamBytes = 64 << 20

// producer writes streamBytes of zeros in 1 MiB writes, so that the
// producer is never what limits the stream (busybox head writes 4 KiB at a
// time and tops out near 200 MB/s on a pipe).
var producer = []string{"/bin/dd", "if=/dev/zero", "bs=1048576", "count=" + strconv.Itoa(streamBytes>>20)}

// BenchmarkReadStdout is stdout throughput through ReadStdout with 32 KiB
// reads, the runtime's loop: an exec'd dd writes 64 MiB of zeros, the
// timer runs only while the stream is read.
func BenchmarkReadStdout(b *testing.B) {
	p := newBenchPod(b, "bench-stream")
	ctx := context.Background()
	if err := p.h.Create(ctx, p.cid, []string{"/bin/sleep", "100000"}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.h.Remove(context.Background(), p.cid) })
	if err := p.h.Start(ctx, p.cid); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(streamBytes)
	reads := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		id := "p" + strconv.Itoa(i)
		if err := p.h.Exec(ctx, p.cid, id, false, producer...); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n := 0
		err := p.h.ReadStream(ctx, p.cid, id, false, func(d []byte) { n += len(d); reads++ })
		b.StopTimer()
		if err != nil || n != streamBytes {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		if st, err := p.h.Wait(ctx, p.cid, id); err != nil || st != 0 {
			b.Fatalf("status %d: %v", st, err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(streamBytes)*float64(b.N)/float64(reads), "B/read")
}

// BenchmarkReadPipeDirect reads the same producer's stdout straight from a
// pipe with 32 KiB reads: the ceiling BenchmarkReadStdout is compared with.
func BenchmarkReadPipeDirect(b *testing.B) {
	buf := make([]byte, 32<<10)
	b.SetBytes(streamBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cmd := exec.Command("/bin/busybox", append([]string{"dd"}, producer[1:]...)...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n := 0
		for {
			k, err := out.Read(buf)
			n += k
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := cmd.Wait(); err != nil || n != streamBytes {
			b.Fatalf("read %d: %v", n, err)
		}
		b.StartTimer()
	}
}
