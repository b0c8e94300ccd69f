package container

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/internal/stream"
)

// Process is one process of a container: its init or an exec'd process.
// Its exit status comes from the goroutine started with it, which is the only
// place the process is waited for (see package reaper for the design).
type Process struct {
	ExecID string
	Init   bool
	IO     *stream.IO

	lp   *libcontainer.Process
	pid  int
	done chan struct{}
	// status is written once, before done is closed.
	status int
}

// Pid is the process's pid in the agent's PID namespace.
func (p *Process) Pid() int { return p.pid }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the process has exited and returns its status: the
// exit code, or 128 + the signal that killed it. Any number of callers may
// wait at once.
func (p *Process) Wait(ctx context.Context) (int, error) {
	select {
	case <-p.done:
		return p.status, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// reap waits for the process through libcontainer (a pidfd wait on exactly
// this pid), records its status and starts the stdio drain window.
func (p *Process) reap() {
	st, err := p.lp.Wait()
	p.status = exitStatus(st, err)
	p.IO.Exited()
	close(p.done)
}

func exitStatus(st *os.ProcessState, err error) int {
	if st == nil {
		if err != nil {
			return 255
		}
		return 0
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok {
		return st.ExitCode()
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// newProcess builds the libcontainer process for spec and its stdio.
func newProcess(execID string, init bool, sp *specs.Process, pipeSize int) (*Process, stream.Child, *os.File, error) {
	if sp == nil || len(sp.Args) == 0 {
		return nil, stream.Child{}, nil, invalid("process has no args")
	}
	io, child, err := stream.New(stream.Options{Terminal: sp.Terminal, PipeSize: pipeSize})
	if err != nil {
		return nil, stream.Child{}, nil, err
	}
	lp := &libcontainer.Process{
		Args:             sp.Args,
		Env:              sp.Env,
		Cwd:              sp.Cwd,
		UID:              int(sp.User.UID),
		GID:              int(sp.User.GID),
		AdditionalGroups: toInts(sp.User.AdditionalGids),
		Init:             init,
		NoNewPrivileges:  &sp.NoNewPrivileges,
		AppArmorProfile:  sp.ApparmorProfile,
		Label:            sp.SelinuxLabel,
	}
	if lp.Cwd == "" {
		lp.Cwd = "/"
	}
	if child.Stdin != nil {
		lp.Stdin, lp.Stdout, lp.Stderr = child.Stdin, child.Stdout, child.Stderr
	}
	if sp.ConsoleSize != nil {
		lp.ConsoleWidth, lp.ConsoleHeight = uint16(sp.ConsoleSize.Width), uint16(sp.ConsoleSize.Height)
	}
	var parentSock *os.File
	if sp.Terminal {
		parent, childSock, err := socketpair()
		if err != nil {
			io.Close()
			return nil, stream.Child{}, nil, err
		}
		lp.ConsoleSocket = childSock
		child.Stdin = childSock // closed with the other child ends after start
		parentSock = parent
	}
	p := &Process{ExecID: execID, Init: init, IO: io, lp: lp, done: make(chan struct{})}
	return p, child, parentSock, nil
}

func toInts(v []uint32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func socketpair() (*os.File, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "console-parent"), os.NewFile(uintptr(fds[1]), "console-child"), nil
}

// signalHandled reports whether the process catches, ignores or blocks sig,
// read from the SigCgt/SigIgn/SigBlk masks of /proc/<pid>/status.
func signalHandled(pid int, sig syscall.Signal) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	return SignalInMasks(string(data), sig)
}

// SignalInMasks parses a /proc/<pid>/status text and reports whether sig is
// set in its SigCgt, SigIgn or SigBlk mask.
func SignalInMasks(status string, sig syscall.Signal) bool {
	if sig < 1 || sig > 64 {
		return false
	}
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "SigCgt" && k != "SigIgn" && k != "SigBlk") {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			continue
		}
		if mask&(1<<(uint(sig)-1)) != 0 {
			return true
		}
	}
	return false
}
