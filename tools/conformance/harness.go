package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/transport"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

// readLen is the runtime's stream read size (32 KiB).
const readLen = 32 << 10

// Harness is the host side of one sandbox: the connection, the sandbox id
// and the helpers that create, run and remove containers in it.
type Harness struct {
	Agent     agentpb.AgentServiceService
	Health    agentpb.HealthService
	cfg       Config
	c         *client.Client
	sandboxID string
	rootfs    *rootfsBuilder
	// agentPID is the agent's process id when the peer is on a unix
	// socket (0 otherwise); zombie and mount checks look at its children
	// and its mount table.
	agentPID int
	// baseMounts are the mounts under the run dir before the sandbox existed.
	baseMounts map[string]int
	// shmPath is the sandbox's shm storage once CreateSandbox made it;
	// containers then get it as /dev/shm.
	shmPath string
	// sandboxMounts are the mounts under the run dir once the sandbox
	// exists: all runtime-rs leaves when it stops the VM instead of sending
	// DestroySandbox.
	sandboxMounts map[string]int
}

// NewHarness connects to the agent named by cfg.
func NewHarness(ctx context.Context, cfg Config) (*Harness, error) {
	cfg = withDefaults(cfg)
	if err := checkRuntime(cfg.Runtime); err != nil {
		return nil, err
	}
	c, err := dial(ctx, cfg.Addr)
	if err != nil {
		return nil, err
	}
	rb, err := newRootfsBuilder(cfg.Busybox, filepath.Join(cfg.KataRunDir, "shared", ".conformance", "busybox-"+randomID()))
	if err != nil {
		c.Close()
		return nil, err
	}
	return &Harness{
		Agent: c.Agent, Health: c.Health, cfg: cfg, c: c,
		sandboxID: "sandbox-" + randomID(), rootfs: rb, agentPID: peerPID(ctx, cfg.Addr),
	}, nil
}

// Close drops the connection and the suite's private busybox.
func (h *Harness) Close() error {
	_ = os.Remove(h.rootfs.busybox)
	_ = os.Remove(filepath.Dir(h.rootfs.busybox)) // only when no other run uses it
	return h.c.Close()
}

// SandboxShm is the sandbox's shm mount point, "" before CreateSandbox made it.
func (h *Harness) SandboxShm() string { return h.shmPath }

// SandboxID is the id the suite's sandbox (and its pause container) uses.
func (h *Harness) SandboxID() string { return h.sandboxID }

// peerPID asks the kernel who is listening on a unix socket address.
func peerPID(ctx context.Context, addr string) int {
	a, err := transport.ParseAddr(addr)
	if err != nil || a.Scheme != transport.Unix {
		return 0
	}
	conn, err := transport.Dial(ctx, a)
	if err != nil {
		return 0
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newID returns a fresh container id with a readable prefix.
func newID(prefix string) string { return prefix + "-" + randomID() }

// bundleDir is where the runtime's shared file system puts a container.
func (h *Harness) bundleDir(cid string) string {
	return filepath.Join(h.cfg.KataRunDir, "shared", "containers", cid)
}

// RootfsPath is the container's Root.Path, as the runtime sends it.
func (h *Harness) RootfsPath(cid string) string { return filepath.Join(h.bundleDir(cid), "rootfs") }

// Create writes the container's root file system and sends CreateContainer
// with exec_id = container id, as the runtime does.
func (h *Harness) Create(ctx context.Context, cid string, args []string, opts ...SpecOption) error {
	if err := h.rootfs.build(h.RootfsPath(cid)); err != nil {
		return err
	}
	spec := h.Spec(cid, args, opts...)
	req := &agentpb.CreateContainerRequest{ContainerId: cid, ExecId: cid, OCI: spec}
	for _, o := range opts {
		if o.storage != nil {
			req.Storages = append(req.Storages, o.storage)
		}
	}
	if _, err := h.Agent.CreateContainer(ctx, req); err != nil {
		_ = os.RemoveAll(h.bundleDir(cid))
		return fmt.Errorf("CreateContainer %s: %w", cid, err)
	}
	return nil
}

// Start sends StartContainer.
func (h *Harness) Start(ctx context.Context, cid string) error {
	if _, err := h.Agent.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: cid}); err != nil {
		return fmt.Errorf("StartContainer %s: %w", cid, err)
	}
	return nil
}

// Remove kills what is left of the container the way the runtime does
// (SIGKILL to all, wait), removes it synchronously and deletes its bundle.
func (h *Harness) Remove(ctx context.Context, cid string) error {
	_, _ = h.Agent.SignalProcess(ctx, &agentpb.SignalProcessRequest{ContainerId: cid, Signal: uint32(unix.SIGKILL)})
	_, _ = h.Agent.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: cid})
	_, err := h.Agent.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: cid, Timeout: 0})
	if rerr := os.RemoveAll(h.bundleDir(cid)); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("RemoveContainer %s: %w", cid, err)
	}
	return nil
}

// cleanup removes a container on a fresh context, for deferred use after a
// failure (the scenario's context may be the thing that ended).
func (h *Harness) cleanup(cid string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = h.Remove(ctx, cid)
}

// ReadAll reads a process's stdout (or stderr) with 32 KiB reads until the
// agent reports end of stream, and returns everything read.
func (h *Harness) ReadAll(ctx context.Context, cid, execID string, stderr bool) ([]byte, error) {
	var out []byte
	err := h.ReadStream(ctx, cid, execID, stderr, func(b []byte) { out = append(out, b...) })
	return out, err
}

// ReadStream calls sink with each chunk of a process's stdout (or stderr),
// read with the runtime's 32 KiB reads, until the agent reports end of
// stream: empty data, or an error once the process is gone (the runtime's
// copy loop ends on any error too).
func (h *Harness) ReadStream(ctx context.Context, cid, execID string, stderr bool, sink func([]byte)) error {
	req := &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: execID, Len: readLen}
	for {
		var resp *agentpb.ReadStreamResponse
		var err error
		if stderr {
			resp, err = h.Agent.ReadStderr(ctx, req)
		} else {
			resp, err = h.Agent.ReadStdout(ctx, req)
		}
		if err != nil {
			if ctx.Err() != nil || status.Code(err) == codes.Unimplemented {
				return err
			}
			return nil
		}
		if len(resp.Data) == 0 {
			return nil
		}
		if len(resp.Data) > readLen {
			return fmt.Errorf("ReadStream returned %d bytes for a %d-byte read", len(resp.Data), readLen)
		}
		sink(resp.Data)
	}
}

// Wait sends WaitProcess and returns the exit status.
func (h *Harness) Wait(ctx context.Context, cid, execID string) (int32, error) {
	r, err := h.Agent.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: execID})
	if err != nil {
		return 0, fmt.Errorf("WaitProcess %s/%s: %w", cid, execID, err)
	}
	return r.Status, nil
}

// Output is what one process produced.
type Output struct {
	Stdout, Stderr []byte
	Status         int32
}

// Collect reads both streams concurrently until EOF, then waits for the
// process: the runtime's order.
func (h *Harness) Collect(ctx context.Context, cid, execID string, tty bool) (Output, error) {
	var o Output
	var wg sync.WaitGroup
	var errOut, errErr error
	wg.Add(1)
	go func() { defer wg.Done(); o.Stdout, errOut = h.ReadAll(ctx, cid, execID, false) }()
	if !tty {
		wg.Add(1)
		go func() { defer wg.Done(); o.Stderr, errErr = h.ReadAll(ctx, cid, execID, true) }()
	}
	wg.Wait()
	if err := errors.Join(errOut, errErr); err != nil {
		return o, fmt.Errorf("reading streams of %s/%s: %w", cid, execID, err)
	}
	st, err := h.Wait(ctx, cid, execID)
	o.Status = st
	return o, err
}

// RunContainer creates and starts a container, collects its output and
// status and removes it.
func (h *Harness) RunContainer(ctx context.Context, cid string, args []string, opts ...SpecOption) (Output, error) {
	if err := h.Create(ctx, cid, args, opts...); err != nil {
		return Output{}, err
	}
	defer h.cleanup(cid)
	if err := h.Start(ctx, cid); err != nil {
		return Output{}, err
	}
	o, err := h.Collect(ctx, cid, cid, false)
	if err != nil {
		return o, err
	}
	return o, h.Remove(ctx, cid)
}

// Exec starts a process in a running container.
func (h *Harness) Exec(ctx context.Context, cid, execID string, tty bool, args ...string) error {
	p := h.process(args)
	p.Terminal = tty
	_, err := h.Agent.ExecProcess(ctx, &agentpb.ExecProcessRequest{ContainerId: cid, ExecId: execID, Process: p})
	if err != nil {
		return fmt.Errorf("ExecProcess %s/%s: %w", cid, execID, err)
	}
	return nil
}

// Signal sends a signal to one process (execID = container id for init,
// "" for every process of the container).
func (h *Harness) Signal(ctx context.Context, cid, execID string, sig unix.Signal) error {
	_, err := h.Agent.SignalProcess(ctx, &agentpb.SignalProcessRequest{ContainerId: cid, ExecId: execID, Signal: uint32(sig)})
	if err != nil {
		return fmt.Errorf("SignalProcess %s/%s %v: %w", cid, execID, sig, err)
	}
	return nil
}

// startLongRunning creates and starts a container that sleeps until killed,
// for scenarios that exec into it.
func (h *Harness) startLongRunning(ctx context.Context, prefix string, opts ...SpecOption) (string, error) {
	cid := newID(prefix)
	if err := h.Create(ctx, cid, []string{"/bin/sleep", "100000"}, opts...); err != nil {
		return "", err
	}
	if err := h.Start(ctx, cid); err != nil {
		h.cleanup(cid)
		return "", err
	}
	return cid, nil
}
