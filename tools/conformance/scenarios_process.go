package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// execNoTTY execs a process with separate stdout and stderr.
func execNoTTY(ctx context.Context, h *Harness) error {
	cid, err := h.startLongRunning(ctx, "exec")
	if err != nil {
		return err
	}
	defer h.cleanup(cid)
	if err := h.Exec(ctx, cid, "e1", false, "/bin/sh", "-c", "echo out; echo err >&2; exit 0"); err != nil {
		return err
	}
	o, err := h.Collect(ctx, cid, "e1", false)
	if err != nil {
		return err
	}
	if string(o.Stdout) != "out\n" || string(o.Stderr) != "err\n" || o.Status != 0 {
		return fmt.Errorf("got stdout %q stderr %q status %d", o.Stdout, o.Stderr, o.Status)
	}
	return h.Remove(ctx, cid)
}

// execTTY execs a process on a terminal, resizes it and checks the size the
// process sees.
func execTTY(ctx context.Context, h *Harness) error {
	cid, err := h.startLongRunning(ctx, "tty")
	if err != nil {
		return err
	}
	defer h.cleanup(cid)
	if err := h.Exec(ctx, cid, "t1", true, "/bin/sh", "-c", "read x; stty size; tty"); err != nil {
		return err
	}
	if _, err := h.Agent.TtyWinResize(ctx, &agentpb.TtyWinResizeRequest{ContainerId: cid, ExecId: "t1", Row: 40, Column: 100}); err != nil {
		return fmt.Errorf("TtyWinResize: %w", err)
	}
	if _, err := h.Agent.WriteStdin(ctx, &agentpb.WriteStreamRequest{ContainerId: cid, ExecId: "t1", Data: []byte("go\n")}); err != nil {
		return fmt.Errorf("WriteStdin: %w", err)
	}
	o, err := h.Collect(ctx, cid, "t1", true)
	if err != nil {
		return err
	}
	if !bytes.Contains(o.Stdout, []byte("40 100")) || !bytes.Contains(o.Stdout, []byte("/dev/pts/")) || o.Status != 0 {
		return fmt.Errorf("terminal output %q status %d, want the size 40 100 and a /dev/pts name", o.Stdout, o.Status)
	}
	return h.Remove(ctx, cid)
}

// stdinEcho feeds cat through WriteStdin and CloseStdin.
func stdinEcho(ctx context.Context, h *Harness) error {
	cid, err := h.startLongRunning(ctx, "stdin")
	if err != nil {
		return err
	}
	defer h.cleanup(cid)
	if err := h.Exec(ctx, cid, "cat", false, "/bin/cat"); err != nil {
		return err
	}
	msg := []byte("hello through stdin\n")
	w, err := h.Agent.WriteStdin(ctx, &agentpb.WriteStreamRequest{ContainerId: cid, ExecId: "cat", Data: msg})
	if err != nil {
		return fmt.Errorf("WriteStdin: %w", err)
	}
	if int(w.Len) != len(msg) {
		return fmt.Errorf("WriteStdin wrote %d of %d bytes", w.Len, len(msg))
	}
	if _, err := h.Agent.CloseStdin(ctx, &agentpb.CloseStdinRequest{ContainerId: cid, ExecId: "cat"}); err != nil {
		return fmt.Errorf("CloseStdin: %w", err)
	}
	o, err := h.Collect(ctx, cid, "cat", false)
	if err != nil {
		return err
	}
	if !bytes.Equal(o.Stdout, msg) || o.Status != 0 {
		return fmt.Errorf("cat gave %q status %d", o.Stdout, o.Status)
	}
	return h.Remove(ctx, cid)
}

// bigOutputLine is what the 8 MiB scenario repeats: 64 bytes with the newline.
const bigOutputLine = "0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQ"

// BigOutputSize is the size of the large-output scenario's stream.
const BigOutputSize = 8 << 20

// BigOutputArgs prints n bytes of repeated bigOutputLine.
func BigOutputArgs(n int) []string {
	return []string{"/bin/sh", "-c", "yes " + bigOutputLine + " | head -c " + strconv.Itoa(n)}
}

// ExpectedBigOutput is what BigOutputArgs(n) prints.
func ExpectedBigOutput(n int) []byte {
	line := bigOutputLine + "\n"
	return []byte(strings.Repeat(line, n/len(line)+1)[:n])
}

// bigStdout reads 8 MiB of container output with 32 KiB reads and checks
// every byte.
func bigStdout(ctx context.Context, h *Harness) error {
	o, err := h.RunContainer(ctx, newID("big"), BigOutputArgs(BigOutputSize))
	if err != nil {
		return err
	}
	want := ExpectedBigOutput(BigOutputSize)
	if sha256.Sum256(o.Stdout) != sha256.Sum256(want) {
		at := 0
		for at < len(o.Stdout) && at < len(want) && o.Stdout[at] == want[at] {
			at++
		}
		return fmt.Errorf("got %d bytes, want %d; first difference at byte %d", len(o.Stdout), len(want), at)
	}
	if o.Status != 0 {
		return fmt.Errorf("status %d", o.Status)
	}
	return nil
}

// exitCode checks that a container init's exit code comes back unchanged.
func exitCode(code int) func(context.Context, *Harness) error {
	return func(ctx context.Context, h *Harness) error {
		o, err := h.RunContainer(ctx, newID("exit"), []string{"/bin/sh", "-c", "exit " + strconv.Itoa(code)})
		if err != nil {
			return err
		}
		if int(o.Status) != code {
			return fmt.Errorf("status %d, want %d", o.Status, code)
		}
		return nil
	}
}

// signalled execs args, sends sig and expects want as the exit status.
func signalled(ctx context.Context, h *Harness, sig unix.Signal, want int32, args ...string) error {
	cid, err := h.startLongRunning(ctx, "sig")
	if err != nil {
		return err
	}
	defer h.cleanup(cid)
	if err := h.Exec(ctx, cid, "victim", false, args...); err != nil {
		return err
	}
	if err := h.Signal(ctx, cid, "victim", sig); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := h.Wait(wctx, cid, "victim")
	if err != nil {
		return err
	}
	if st != want {
		return fmt.Errorf("status %d after %v, want %d", st, sig, want)
	}
	return h.Remove(ctx, cid)
}

// execSigkill: 128 + SIGKILL.
func execSigkill(ctx context.Context, h *Harness) error {
	return signalled(ctx, h, unix.SIGKILL, 137, "/bin/sleep", "100000")
}

// execSigterm: an exec'd shell with the default SIGTERM action dies of it.
func execSigterm(ctx context.Context, h *Harness) error {
	return signalled(ctx, h, unix.SIGTERM, 143, "/bin/sh", "-c", "trap - TERM; sleep 100000")
}

// initSigterm: a container init is PID 1 of its namespace and ignores a
// SIGTERM it has no handler for; the agent turns it into SIGKILL, as
// Kata's does, so the container stops.
func initSigterm(ctx context.Context, h *Harness) error {
	cid, err := h.startLongRunning(ctx, "init-term")
	if err != nil {
		return err
	}
	defer h.cleanup(cid)
	if err := h.Signal(ctx, cid, cid, unix.SIGTERM); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := h.Wait(wctx, cid, cid)
	if err != nil {
		return fmt.Errorf("%w (a SIGTERM to an init without a handler must stop it)", err)
	}
	if st != 137 {
		return fmt.Errorf("status %d, want 137", st)
	}
	return h.Remove(ctx, cid)
}
