package debugconsole

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// start runs the console on a fresh unix socket and returns its path.
func start(t *testing.T, ctx context.Context, log testenv.LogRecords) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "console.sock")
	errc := make(chan error, 1)
	go func() {
		errc <- Start(ctx, Options{Log: slog.New(slog.NewJSONHandler(log, nil))}, func() (net.Listener, error) {
			return net.Listen("unix", path)
		})
	}()
	t.Cleanup(func() {
		if err := <-errc; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	log.Wait(t, ctx, "debug console serving a shell: for development images only")
	return path
}

// readUntil reads c until its output matches re or the stream ends.
func readUntil(t *testing.T, c net.Conn, re *regexp.Regexp) [][]byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 4096)
	for {
		if m := re.FindSubmatch(out); m != nil {
			return m
		}
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			t.Fatalf("output %q ended (%v) before %s", out, err, re)
		}
	}
}

func TestShellOverSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := make(testenv.LogRecords, 64)
	path := start(t, ctx, log)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)

	// The arithmetic makes the answer differ from the terminal's echo of
	// the command line.
	io.WriteString(c, "echo hi$((40+2)) pid=$$ tty=$(tty)\n")
	m := readUntil(t, c, regexp.MustCompile(`hi42 pid=(\d+) tty=(/dev/pts/\d+)`))
	pid, _ := strconv.Atoi(string(m[1]))

	// Exiting the shell ends the session and closes the connection.
	io.WriteString(c, "exit 3\n")
	rest, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("after exit: %v (read %q)", err, rest)
	}
	ended := log.Wait(t, ctx, "debug console session ended")
	if ended["error"] != "exit status 3" {
		t.Errorf("session ended with %v, want the shell's exit status 3", ended["error"])
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("shell %d still exists: %v", pid, err)
	}
}

func TestHangupKillsTheSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := make(testenv.LogRecords, 64)
	path := start(t, ctx, log)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	// A background child in the shell's session must go too.
	io.WriteString(c, "sleep 1000 & echo child=$! shell=$$\n")
	m := readUntil(t, c, regexp.MustCompile(`child=(\d+) shell=(\d+)`))
	c.Close()
	log.Wait(t, ctx, "debug console session ended")
	for _, pid := range [][]byte{m[1], m[2]} {
		// The shell is reaped by the session; its killed child is reaped by
		// nobody here (the test is not a subreaper), so it may stay a zombie.
		st, err := os.ReadFile("/proc/" + string(pid) + "/stat")
		if err == nil && !bytes.Contains(st, []byte(") Z ")) {
			t.Errorf("process %s still running after the peer hung up: %s", pid, st)
		}
	}
}

func TestConfidentialRefuses(t *testing.T) {
	listened := false
	err := Start(context.Background(), Options{Confidential: true}, func() (net.Listener, error) {
		listened = true
		return nil, errors.New("unreachable")
	})
	if !errors.Is(err, ErrConfidential) || listened {
		t.Errorf("confidential Start: %v, listened %v; want ErrConfidential before listening", err, listened)
	}
}

func TestNoShell(t *testing.T) {
	listened := false
	err := Start(context.Background(), Options{Shells: []string{filepath.Join(t.TempDir(), "sh")}}, func() (net.Listener, error) {
		listened = true
		return nil, errors.New("unreachable")
	})
	if err == nil || listened {
		t.Errorf("Start without a shell: %v, listened %v; want an error before listening", err, listened)
	}
}
