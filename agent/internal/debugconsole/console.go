// Package debugconsole serves a shell inside the guest on the debug console
// port (agent.debug_console, agent.debug_console_vport, 1026) for
// development images. Like the Kata agent (src/agent/src/console.rs:59-141,
// 143-175), every connection gets its own shell on a new pseudo-terminal,
// and the connection carries the terminal's raw bytes both ways: no framing,
// no handshake. A confidential agent never serves it, whatever its
// configuration says: a shell would hand the guest to whoever reaches the
// port, which is the host.
package debugconsole

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"syscall"
)

// ErrConfidential is Start's answer in confidential mode.
var ErrConfidential = errors.New("debug console refused: a confidential agent never serves a shell, whatever the image file or the kernel command line asks")

// defaultShells are tried in order, as the Kata agent does (console.rs:39-53
// without its devkit extension).
func defaultShells() []string { return []string{"/bin/bash", "/bin/sh"} }

// Options configure the console.
type Options struct {
	// Confidential refuses the console outright.
	Confidential bool
	// Shells are the candidates; the first that exists is run.
	// Empty means /bin/bash, then /bin/sh.
	Shells []string
	Log    *slog.Logger
}

// Start checks that the console may run, opens its listener with listen and
// serves it until ctx ends. In confidential mode it returns ErrConfidential
// before listening: nothing is bound, nothing answers.
func Start(ctx context.Context, o Options, listen func() (net.Listener, error)) error {
	if o.Confidential {
		return ErrConfidential
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	shell, err := findShell(o.Shells)
	if err != nil {
		return err
	}
	l, err := listen()
	if err != nil {
		return fmt.Errorf("debug console: %w", err)
	}
	o.Log.WarnContext(ctx, "debug console serving a shell: for development images only", "addr", l.Addr().String(), "shell", shell)
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("debug console: %w", err)
		}
		go func() {
			o.Log.InfoContext(ctx, "debug console session started", "addr", c.RemoteAddr().String())
			err := session(ctx, c, shell)
			o.Log.InfoContext(ctx, "debug console session ended", "addr", c.RemoteAddr().String(), "error", errText(err))
		}()
	}
}

func findShell(shells []string) (string, error) {
	if len(shells) == 0 {
		shells = defaultShells()
	}
	for _, s := range shells {
		if fi, err := os.Stat(s); err == nil && !fi.IsDir() {
			return s, nil
		}
	}
	return "", fmt.Errorf("debug console: no shell found (tried %v)", shells)
}

// session runs one shell on a new terminal whose other end is c. It ends
// when the shell exits (c is closed) or the peer hangs up (the shell's
// session is killed).
func session(ctx context.Context, c net.Conn, shell string) error {
	defer c.Close()
	master, slave, err := openPTY()
	if err != nil {
		return err
	}
	defer master.Close()
	cmd := exec.Command(shell)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "TERM=vt100"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// Its own session with the terminal as controlling tty: job control
	// works, and the whole session can be killed at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	slave.Close() // the shell holds it now; its exit makes master reads fail
	if err != nil {
		return fmt.Errorf("start %s: %w", shell, err)
	}
	// Waited for at once: the agent's reaper leaves children with an owner
	// alone only while their owner waits promptly.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	hangup := make(chan struct{})
	go func() {
		io.Copy(master, c)
		close(hangup)
	}()
	output := make(chan struct{})
	go func() {
		io.Copy(c, master) // ends with EIO once the shell's side is closed
		close(output)
	}()
	select {
	case err = <-exited:
		// Whatever it left running in its session goes too, so the
		// terminal closes; what the shell wrote still reaches the peer.
		// The shell is reaped: a process now holding its pid as the
		// leader of a session of its own is not ours to kill.
		if !pidIsSessionLeader(cmd.Process.Pid) {
			killSession(cmd.Process.Pid)
		}
		<-output
		return err
	case <-hangup:
	case <-ctx.Done():
	}
	killSession(cmd.Process.Pid)
	return <-exited
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
