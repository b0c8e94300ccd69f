package rpc_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

// readSize is the Kata runtime's stdout read size.
const readSize = 32 << 10

// The three benchmarks below bracket ReadStdout: BenchmarkReadPipeDirect is
// the same writer read without the agent (the floor of what a reader can
// get), BenchmarkReadStdoutCeiling is ttrpc alone answering with constant
// data (the most the API can carry), BenchmarkReadStdout (in
// bench_lifecycle_test.go) the real path in between.

// BenchmarkReadPipeDirect reads 32 KiB chunks from a pipe fed by the same
// busybox writer as BenchmarkReadStdout, with no agent in between.
func BenchmarkReadPipeDirect(b *testing.B) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		b.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bb, "cat", "/dev/zero")
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w.Close()
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		r.Close()
	})
	buf := make([]byte, readSize)
	var n int64
	for b.Loop() {
		k, err := r.Read(buf)
		if err != nil || k == 0 {
			b.Fatal(k, err)
		}
		n += int64(k)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds()/1e6, "MB/s")
}

// constReader answers ReadStdout with the same 32 KiB every time; every
// other rpc is the embedded nil interface and is never called.
type constReader struct {
	agentpb.AgentServiceService
	data []byte
}

func (c constReader) ReadStdout(context.Context, *agentpb.ReadStreamRequest) (*agentpb.ReadStreamResponse, error) {
	return &agentpb.ReadStreamResponse{Data: c.data}, nil
}

// BenchmarkReadStdoutCeiling is a bare ttrpc server on a unix socket that
// returns 32 KiB of constant data per ReadStdout: no policy, no pipe, no
// interceptors. It is what ttrpc itself allows.
func BenchmarkReadStdoutCeiling(b *testing.B) {
	// size=1 separates ttrpc's per-call cost from its per-byte cost.
	for _, size := range []int{1, readSize} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchCeiling(b, size) })
	}
}

func benchCeiling(b *testing.B, size int) {
	sock := filepath.Join(b.TempDir(), "ceiling.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		b.Fatal(err)
	}
	agentpb.RegisterAgentServiceService(srv, constReader{data: make([]byte, size)})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = srv.Serve(ctx, l) }()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	c := ttrpc.NewClient(conn)
	b.Cleanup(func() {
		c.Close()
		_ = srv.Close()
		cancel()
	})
	cl := agentpb.NewAgentServiceClient(c)
	req := &agentpb.ReadStreamRequest{ContainerId: "c", Len: readSize}
	var n int64
	b.ReportAllocs()
	for b.Loop() {
		r, err := cl.ReadStdout(ctx, req)
		if err != nil || len(r.Data) == 0 {
			b.Fatal(err)
		}
		n += int64(len(r.Data))
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds()/1e6, "MB/s")
}

// agentDirEnv makes the test binary a standalone agent serving on
// <dir>/agent.sock, ceilingDirEnv a bare ttrpc server (constReader, 32 KiB)
// on <dir>/ceiling.sock (see serveAgentIfRequested).
const (
	agentDirEnv   = "COCOON_TEST_AGENT_DIR"
	ceilingDirEnv = "COCOON_TEST_CEILING_DIR"
)

// serveAgentIfRequested runs the real agent, or the bare ttrpc server, as
// this process when the test binary was re-executed by
// BenchmarkReadStdoutAgentProcess, so that the server's CPU and garbage
// collector are not shared with the client, as in a pod VM. Both run with
// the agent's garbage collection settings (daemon.TuneGC), as the agent
// binary does, so that the ceiling is one for the same settings. It prints
// "ready" once serving and exits on SIGTERM.
func serveAgentIfRequested() {
	if os.Getenv(agentDirEnv) != "" || os.Getenv(ceilingDirEnv) != "" {
		daemon.TuneGC(os.LookupEnv)
	}
	if dir := os.Getenv(agentDirEnv); dir != "" {
		os.Exit(serveAgent(dir))
	}
	if dir := os.Getenv(ceilingDirEnv); dir != "" {
		os.Exit(serveCeiling(dir))
	}
}

func serveAgent(dir string) int {
	cfg := config.Default()
	cfg.ServerAddr = "unix://" + filepath.Join(dir, "agent.sock")
	cfg.DecisionLog = filepath.Join(dir, "decisions.log")
	cfg.KataRunDir = filepath.Join(dir, "run")
	cfg.StateDir = filepath.Join(dir, "state")
	defer profile("COCOON_TEST_AGENT")()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, cfg, slog.New(slog.DiscardHandler), func(net.Addr) { fmt.Println("ready") }); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 1
	}
	return 0
}

func serveCeiling(dir string) int {
	l, err := net.Listen("unix", filepath.Join(dir, "ceiling.sock"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		return 1
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		return 1
	}
	agentpb.RegisterAgentServiceService(srv, constReader{data: make([]byte, readSize)})
	defer profile("COCOON_TEST_CEILING")()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() { _ = srv.Serve(ctx, l) }()
	fmt.Println("ready")
	<-ctx.Done()
	_ = srv.Close()
	return 0
}

// profile starts the profiles a server process was asked for: with
// <prefix>_CPUPROFILE=<file> its CPU, with <prefix>_MEMPROFILE=<file> every
// allocation. The returned function writes them out.
func profile(prefix string) func() {
	var done []func()
	if prof := os.Getenv(prefix + "_CPUPROFILE"); prof != "" {
		if f, err := os.Create(prof); err == nil && pprof.StartCPUProfile(f) == nil {
			done = append(done, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if prof := os.Getenv(prefix + "_MEMPROFILE"); prof != "" {
		runtime.MemProfileRate = 1
		done = append(done, func() {
			if f, err := os.Create(prof); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		})
	}
	return func() {
		for _, f := range done {
			f()
		}
	}
}

// procCPU is the user+system CPU time a process has used so far.
func procCPU(tb testing.TB, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// startServer re-executes the test binary as a server (env names which)
// with its own temporary directory, waits until it serves, and stops it
// when the benchmark ends.
func startServer(b *testing.B, env string) (dir string, pid int) {
	dir = b.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Errorf("%s process: %v", env, err)
		}
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("%s process: %q %v", env, line, err)
	}
	return dir, cmd.Process.Pid
}

// BenchmarkReadStdoutAgentProcess is BenchmarkReadStdout with the agent in
// its own process, side by side with the bare ttrpc server of
// BenchmarkReadStdoutCeiling, also in its own process: the loop alternates
// one 32 KiB read from each, so both see the same machine load, and
// agent/ceiling is their ratio. Besides MB/s it reports each server's CPU
// time per 32 KiB read, which depends far less on how busy the machine is
// than wall time.
func BenchmarkReadStdoutAgentProcess(b *testing.B) {
	testenv.RequiresRoot(b)
	dir, agentPID := startServer(b, agentDirEnv)
	cdir, ceilingPID := startServer(b, ceilingDirEnv)
	ctx := b.Context()
	c, err := client.Dial(ctx, "unix://"+filepath.Join(dir, "agent.sock"))
	if err != nil {
		b.Fatal(err)
	}
	cc, err := client.Dial(ctx, "unix://"+filepath.Join(cdir, "ceiling.sock"))
	if err != nil {
		b.Fatal(err)
	}
	a := c.Agent
	root := testenv.KataRootfs(b, filepath.Join(dir, "run"), "reader")
	if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "reader", OCI: spec(root, "cat", "/dev/zero")}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if _, err := a.RemoveContainer(context.Background(), &agentpb.RemoveContainerRequest{ContainerId: "reader"}); err != nil {
			b.Error(err)
		}
		c.Close()
		cc.Close()
	})
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "reader"}); err != nil {
		b.Fatal(err)
	}
	req := &agentpb.ReadStreamRequest{ContainerId: "reader", Len: readSize}
	var n, cn, ops int64
	var at, ct time.Duration
	cpu0, ccpu0 := procCPU(b, agentPID), procCPU(b, ceilingPID)
	for b.Loop() {
		t0 := time.Now()
		r, err := a.ReadStdout(ctx, req)
		if err != nil || len(r.Data) == 0 {
			b.Fatal(err)
		}
		t1 := time.Now()
		cr, err := cc.Agent.ReadStdout(ctx, req)
		if err != nil || len(cr.Data) == 0 {
			b.Fatal(err)
		}
		at += t1.Sub(t0)
		ct += time.Since(t1)
		n += int64(len(r.Data))
		cn += int64(len(cr.Data))
		ops++
	}
	cpu, ccpu := procCPU(b, agentPID)-cpu0, procCPU(b, ceilingPID)-ccpu0
	agentMBs, ceilMBs := float64(n)/at.Seconds()/1e6, float64(cn)/ct.Seconds()/1e6
	b.ReportMetric(agentMBs, "MB/s")
	b.ReportMetric(ceilMBs, "ceiling-MB/s")
	b.ReportMetric(agentMBs/ceilMBs, "agent/ceiling")
	b.ReportMetric(float64(cpu.Microseconds())/float64(ops), "agent-cpu-µs/op")
	b.ReportMetric(float64(ccpu.Microseconds())/float64(ops), "ceiling-cpu-µs/op")
	b.ReportMetric(float64(n)/float64(ops)/1024, "agent-KiB/read")
}

// TestStdioReadStdoutExact reads a numbered stream through the real server
// with several reads in flight at a time, as a host pipelining reads would:
// every chunk must be the bytes at its place in the stream, which a read
// buffer reused before ttrpc has marshalled the response that carries it
// would break (the stream tests pin the reuse rule itself).
func TestStdioReadStdoutExact(t *testing.T) {
	a := startAgent(t, "")
	const lines = 200000
	a.runContainer(t, "exact", spec(a.rootfs(t, "exact"), "seq", "-w", "1", strconv.Itoa(lines)))
	var want bytes.Buffer
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&want, "%06d\n", i)
	}
	chunks := make(chan []byte, 1024)
	const readers = 4
	errs := make(chan error, readers)
	for range readers {
		go func() {
			for {
				r, err := a.ReadStdout(t.Context(), &agentpb.ReadStreamRequest{ContainerId: "exact", ExecId: "exact", Len: readSize})
				if err != nil || len(r.Data) == 0 {
					errs <- err
					return
				}
				chunks <- r.Data
			}
		}()
	}
	for range readers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(chunks)
	total := 0
	for c := range chunks {
		total += len(c)
		// A chunk holding a whole line is placed by that line's number;
		// a shorter one must at least occur in the stream.
		i := bytes.IndexByte(c, '\n') + 1
		if len(c) < i+7 {
			if !bytes.Contains(want.Bytes(), c) {
				t.Fatalf("chunk %q is not in the stream", c)
			}
			continue
		}
		n, err := strconv.Atoi(string(c[i : i+6]))
		off := (n-1)*7 - i
		if err != nil || off < 0 || off+len(c) > want.Len() || !bytes.Equal(c, want.Bytes()[off:off+len(c)]) {
			t.Fatalf("a %d-byte chunk differs from the stream at its place (line %q)", len(c), c[i:i+7])
		}
	}
	if total != want.Len() {
		t.Fatalf("read %d bytes, want %d", total, want.Len())
	}
	if st := a.wait(t, "exact", "exact"); st != 0 {
		t.Fatalf("seq exited %d", st)
	}
}
