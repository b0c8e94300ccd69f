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
// <dir>/agent.sock (see serveAgentIfRequested).
const agentDirEnv = "COCOON_TEST_AGENT_DIR"

// serveAgentIfRequested runs the real agent as this process when the test
// binary was re-executed by BenchmarkReadStdoutAgentProcess, so that the
// agent's CPU and garbage collector are not shared with the client, as in a
// pod VM. It prints "ready" once serving and exits on SIGTERM.
func serveAgentIfRequested() {
	if dir := os.Getenv(agentDirEnv); dir != "" {
		os.Exit(serveAgent(dir))
	}
}

func serveAgent(dir string) int {
	cfg := config.Default()
	cfg.ServerAddr = "unix://" + filepath.Join(dir, "agent.sock")
	cfg.DecisionLog = filepath.Join(dir, "decisions.log")
	cfg.KataRunDir = filepath.Join(dir, "run")
	cfg.StateDir = filepath.Join(dir, "state")
	// COCOON_TEST_AGENT_CPUPROFILE=<file> profiles the agent process.
	if prof := os.Getenv("COCOON_TEST_AGENT_CPUPROFILE"); prof != "" {
		if f, err := os.Create(prof); err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	// COCOON_TEST_AGENT_MEMPROFILE=<file> writes the agent's allocation
	// profile when it exits (every allocation sampled).
	if prof := os.Getenv("COCOON_TEST_AGENT_MEMPROFILE"); prof != "" {
		runtime.MemProfileRate = 1
		defer func() {
			if f, err := os.Create(prof); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, cfg, slog.New(slog.DiscardHandler), func(net.Addr) { fmt.Println("ready") }); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 1
	}
	return 0
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

// BenchmarkReadStdoutAgentProcess is BenchmarkReadStdout with the agent in
// its own process. Besides MB/s it reports the agent's CPU time per 32 KiB
// read, which depends far less on how busy the machine is than wall time.
func BenchmarkReadStdoutAgentProcess(b *testing.B) {
	testenv.RequiresRoot(b)
	dir := b.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), agentDirEnv+"="+dir)
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
			b.Errorf("agent process: %v", err)
		}
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("agent process: %q %v", line, err)
	}
	ctx := b.Context()
	c, err := client.Dial(ctx, "unix://"+filepath.Join(dir, "agent.sock"))
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
	})
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "reader"}); err != nil {
		b.Fatal(err)
	}
	req := &agentpb.ReadStreamRequest{ContainerId: "reader", Len: readSize}
	var n, ops int64
	cpu0 := procCPU(b, cmd.Process.Pid)
	for b.Loop() {
		r, err := a.ReadStdout(ctx, req)
		if err != nil || len(r.Data) == 0 {
			b.Fatal(err)
		}
		n += int64(len(r.Data))
		ops++
	}
	cpu := procCPU(b, cmd.Process.Pid) - cpu0
	b.ReportMetric(float64(n)/b.Elapsed().Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(ops), "agent-cpu-µs/op")
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
