// Package container runs one OCI container through runc's libcontainer, in
// process: the init is created by CreateContainer and held at runc's exec
// fifo until StartContainer, further processes are exec'd into its
// namespaces and cgroup, and every process is reaped by a goroutine of its
// own that records its exit status for any number of waiters.
//
// The package also applies a guest-pulled image's configuration, resolves
// users against the container's account files, points a spec's devices at
// the guest's and reports cgroup statistics. It takes runtime-spec types and
// knows nothing about the sandbox, storages or the wire.
package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runc/libcontainer/utils"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Options describe a container to create.
type Options struct {
	ID string
	// ExecID names the init process too (the runtime sends the container id).
	ExecID string
	// Spec is the complete runtime spec; Root.Path is the rootfs to use.
	Spec *specs.Spec
	// StateRoot is libcontainer's state directory (one subdirectory per container).
	StateRoot string
	// CgroupParent is the cgroup (relative to each hierarchy's root) under
	// which the container's cgroup is created. The host's CgroupsPath is not
	// used: a path from the host must not place the container in another
	// container's cgroup.
	CgroupParent string
	// PipeSize is applied to stdout/stderr pipes when > 0.
	PipeSize int
	// NoPivotRoot is needed when the guest root is an initramfs.
	NoPivotRoot bool
	// OnOOM is called (from another goroutine) each time the kernel's OOM
	// killer acts in the container's memory cgroup.
	OnOOM func(id string)
	Log   *slog.Logger
}

// Container is one created container.
type Container struct {
	id   string
	spec *specs.Spec
	lc   *libcontainer.Container
	log  *slog.Logger
	pipe int

	mu      sync.Mutex
	init    *Process
	procs   map[string]*Process // exec'd processes by exec id
	started bool
}

// Create creates the container and its init process, which waits for Start.
// On error nothing is left behind: no cgroup, no state directory, no process.
func Create(ctx context.Context, o Options) (c *Container, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := o.Spec
	if s == nil || s.Root == nil || s.Process == nil {
		return nil, invalid("spec needs root and process")
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	if s.Linux.Seccomp != nil && !SeccompSupported() {
		return nil, errdefs.ErrFailedPrecondition.WithMessage("the OCI spec has a seccomp profile but this agent was built without seccomp support")
	}
	s.Linux.CgroupsPath = path.Join("/", o.CgroupParent, o.ID)
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:  o.ID,
		NoPivotRoot: o.NoPivotRoot,
		Spec:        s,
	})
	if err != nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("OCI spec: " + err.Error())
	}
	if err := applyNetSysctls(cfg); err != nil {
		return nil, err
	}
	lc, err := libcontainer.Create(o.StateRoot, o.ID, cfg)
	if err != nil {
		if errors.Is(err, libcontainer.ErrExist) {
			return nil, errs.Newf(errdefs.ErrAlreadyExists, "container %q already exists", o.ID)
		}
		return nil, errdefs.ErrInvalidArgument.WithMessage("container config: " + err.Error())
	}
	c = &Container{id: o.ID, spec: s, lc: lc, log: o.Log, pipe: o.PipeSize, procs: map[string]*Process{}}
	started := false
	defer func() {
		if !started {
			_ = lc.Destroy()
		}
	}()
	execID := o.ExecID
	if execID == "" {
		execID = o.ID
	}
	p, err := c.launch(ctx, execID, true, s.Process)
	if err != nil {
		return nil, err
	}
	c.init = p
	if o.OnOOM != nil {
		c.watchOOM(o.OnOOM)
	}
	started = true
	return c, nil
}

// launch starts a process: for the init, libcontainer's Start (the process
// waits at the exec fifo); for others, Run.
func (c *Container) launch(ctx context.Context, execID string, init bool, sp *specs.Process) (*Process, error) {
	p, child, consoleSock, err := newProcess(execID, init, sp, c.pipe)
	if err != nil {
		return nil, err
	}
	if init {
		err = c.lc.Start(p.lp)
	} else {
		err = c.lc.Run(p.lp)
	}
	child.CloseChild()
	if err != nil {
		if consoleSock != nil {
			consoleSock.Close()
		}
		p.IO.Close()
		return nil, fmt.Errorf("start process %q: %w", execID, err)
	}
	if p.pid, err = p.lp.Pid(); err != nil {
		p.IO.Close()
		return nil, err
	}
	go p.reap()
	if consoleSock != nil {
		master, rerr := utils.RecvFile(consoleSock)
		consoleSock.Close()
		if rerr == nil {
			rerr = p.IO.SetTerminal(master)
		}
		if rerr != nil {
			_ = p.lp.Signal(unix.SIGKILL)
			<-p.done
			p.IO.Close()
			return nil, fmt.Errorf("receive terminal of %q: %w", execID, rerr)
		}
	}
	return p, nil
}

// ID returns the container id.
func (c *Container) ID() string { return c.id }

// Spec returns the runtime spec the container was created with. Callers
// must not modify it.
func (c *Container) Spec() *specs.Spec { return c.spec }

// Init returns the container's init process.
func (c *Container) Init() *Process { return c.init }

// Start lets the init process exec the workload and returns once it has.
func (c *Container) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errs.Newf(errdefs.ErrFailedPrecondition, "container %q already started", c.id)
	}
	initExe, known := exeIdentity(c.init.pid)
	if err := c.lc.Exec(); err != nil {
		return fmt.Errorf("start container %q: %w", c.id, err)
	}
	c.started = true
	if !known {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, execWaitLimit)
	defer cancel()
	if err := awaitExec(wctx, c.init.pid, initExe, c.init.done); err != nil && ctx.Err() == nil {
		c.log.WarnContext(ctx, "container init has not finished exec'ing its workload", "container_id", c.id, "error", err.Error())
	}
	return nil
}

// execWaitLimit bounds how long Start waits for the init's execve; the
// exec itself takes microseconds, a loaded guest may delay it.
const execWaitLimit = 10 * time.Second

// awaitExec waits until the init has replaced libcontainer's init binary
// with the workload. lc.Exec returns when the init has been released, a
// moment before its execve. Until the execve is complete a signal is judged
// by runc's Go init (a SIGTERM kills it with status 2, or is dropped once
// the kernel resets the handlers of a PID namespace's init), and while the
// kernel moves the exec'ing thread into the place of the thread-group
// leader, /proc/<pid>/exe and /proc/<pid>/ns/* do not resolve, so an
// ExecProcess finds no namespaces to join. It returns nil once the exec is
// complete, and an error when the init exits first (done) or ctx ends.
func awaitExec(ctx context.Context, pid int, initExe fileID, done <-chan struct{}) error {
	delay := 50 * time.Microsecond
	t := time.NewTimer(delay)
	defer t.Stop()
	for !execDone(pid, initExe) {
		select {
		case <-done:
			return errors.New("the init exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if delay < 5*time.Millisecond {
			delay *= 2
		}
		t.Reset(delay)
	}
	return nil
}

// fileID identifies an executable by device and inode: a path says
// nothing when the same name appears in another mount namespace.
type fileID struct{ dev, ino uint64 }

// exeIdentity is the file /proc/<pid>/exe points to.
func exeIdentity(pid int) (fileID, bool) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st); err != nil {
		return fileID{}, false
	}
	return fileID{dev: st.Dev, ino: st.Ino}, true
}

// execDone reports whether the process has completed an execve that
// replaced initExe. A /proc entry that cannot be read is not an answer: it
// is how the process looks while its leader thread is being replaced. The
// executable changes when the new memory map is installed, before the
// kernel resets the signal handlers; the map's start of code is set only
// after that, once the program is loaded.
func execDone(pid int, initExe fileID) bool {
	now, ok := exeIdentity(pid)
	if !ok || now == initExe {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	code, ok := StatStartCode(data)
	return ok && code != 0
}

// Exec starts another process in the container.
func (c *Container) Exec(ctx context.Context, execID string, sp *specs.Process) (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.procs[execID]; ok || execID == c.id || execID == c.init.ExecID {
		return nil, errs.Newf(errdefs.ErrAlreadyExists, "process %q already exists in container %q", execID, c.id)
	}
	if c.init.Exited() {
		return nil, errs.Newf(errdefs.ErrFailedPrecondition, "container %q is not running", c.id)
	}
	p, err := c.launch(ctx, execID, false, sp)
	if err != nil {
		return nil, err
	}
	c.procs[execID] = p
	return p, nil
}

// Process finds a process; "" and the container id name the init.
func (c *Container) Process(execID string) (*Process, error) {
	if execID == "" || execID == c.id || execID == c.init.ExecID {
		return c.init, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.procs[execID]; ok {
		return p, nil
	}
	return nil, errs.Newf(errdefs.ErrNotFound, "process %q not found in container %q", execID, c.id)
}

// Wait blocks until the process exits and returns its status. An exec'd
// process is forgotten once waited for, as in Kata.
func (c *Container) Wait(ctx context.Context, execID string) (int, error) {
	p, err := c.Process(execID)
	if err != nil {
		return 0, err
	}
	status, err := p.Wait(ctx)
	if err != nil {
		return 0, err
	}
	c.Forget(p)
	return status, nil
}

// Forget drops an exec'd process that has exited and been waited for, so
// that long-lived containers with periodic exec probes do not grow.
func (c *Container) Forget(p *Process) {
	if p.Init || !p.Exited() {
		return
	}
	c.mu.Lock()
	if c.procs[p.ExecID] == p {
		delete(c.procs, p.ExecID)
	}
	c.mu.Unlock()
	p.IO.Close()
}

// Signal sends sig to one process. An empty exec id with SIGKILL means
// every process of the container: the cgroup is frozen, each process is
// killed and the cgroup thawed, so nothing forks away meanwhile. A SIGTERM
// to an init that neither catches, ignores nor blocks it would do nothing
// (the kernel protects a PID namespace's init), so SIGKILL is sent instead.
func (c *Container) Signal(ctx context.Context, execID string, sig syscall.Signal) error {
	if sig <= 0 || sig > 64 {
		return errs.Newf(errdefs.ErrInvalidArgument, "signal %d is not a valid signal", sig)
	}
	if execID == "" && sig == unix.SIGKILL {
		return c.KillAll()
	}
	p, err := c.Process(execID)
	if err != nil {
		return err
	}
	if p.Exited() {
		return nil
	}
	if p.Init && sig == unix.SIGTERM && !signalHandled(p.pid, sig) {
		sig = unix.SIGKILL
	}
	if err := unix.Kill(p.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal %d to %q: %w", sig, p.ExecID, err)
	}
	return nil
}

// KillAll kills every process in the container's cgroup.
func (c *Container) KillAll() error {
	// An empty cgroup has no process that could fork while the others are
	// killed, so it is not frozen: RemoveContainer after the workload has
	// exited, the usual case, skips libcontainer's freeze loop and its state
	// refresh. Nothing but the agent moves a process into the cgroup.
	if pids, err := c.lc.Processes(); err != nil || len(pids) > 0 {
		_ = c.lc.Pause()
		pids, err := c.lc.Processes()
		if err == nil {
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
	// Frozen tasks do not die until thawed (cgroup v1), so the cgroup is
	// always thawed, even if the runtime had paused it.
	_ = c.lc.Resume()
	// The init may not be in the cgroup yet or any more; kill it directly.
	if !c.init.Exited() {
		_ = unix.Kill(c.init.pid, unix.SIGKILL)
	}
	return nil
}

// Pause freezes every process of the container.
func (c *Container) Pause() error {
	if err := c.lc.Pause(); err != nil {
		return fmt.Errorf("pause %q: %w", c.id, err)
	}
	return nil
}

// Resume thaws the container.
func (c *Container) Resume() error {
	if err := c.lc.Resume(); err != nil {
		if errors.Is(err, libcontainer.ErrNotPaused) {
			return errs.Newf(errdefs.ErrFailedPrecondition, "container %q is not paused", c.id)
		}
		return fmt.Errorf("resume %q: %w", c.id, err)
	}
	return nil
}

// Destroy kills every process, waits for the init to be reaped (until ctx
// ends) and removes the cgroup and libcontainer state.
func (c *Container) Destroy(ctx context.Context) error {
	_ = c.KillAll()
	select {
	case <-c.init.done:
	case <-ctx.Done():
		return fmt.Errorf("container %q: processes did not exit: %w", c.id, ctx.Err())
	}
	c.mu.Lock()
	procs := make([]*Process, 0, len(c.procs))
	for _, p := range c.procs {
		procs = append(procs, p)
	}
	c.mu.Unlock()
	for _, p := range procs {
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("container %q: process %q did not exit: %w", c.id, p.ExecID, ctx.Err())
		}
	}
	if err := c.lc.Destroy(); err != nil {
		return fmt.Errorf("destroy %q: %w", c.id, err)
	}
	c.init.IO.Close()
	for _, p := range procs {
		p.IO.Close()
	}
	return nil
}

// watchOOM forwards OOM notifications until the memory cgroup goes away.
func (c *Container) watchOOM(onOOM func(string)) {
	ch, err := c.lc.NotifyOOM()
	if err != nil {
		c.log.Warn("no OOM notifications for container", "container_id", c.id, "error", err.Error())
		return
	}
	go func() {
		for range ch {
			onOOM(c.id)
		}
	}()
}

// Config returns libcontainer's view of the container (for tests and stats).
func (c *Container) Config() configs.Config { return c.lc.Config() }

func invalid(msg string) error { return errdefs.ErrInvalidArgument.WithMessage(msg) }

// Rootfs is the container's root file system on the host side.
func (c *Container) Rootfs() string { return c.spec.Root.Path }
