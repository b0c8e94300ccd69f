package e2e

import (
	"bytes"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Ports as runtime-rs asks for them (docs/operations.md).
const (
	logVport     = 1025
	consoleVport = 1026
)

// logStream holds what arrived on the log port, line by line, as
// runtime-rs's forwarder would have logged it.
type logStream struct {
	mu      sync.Mutex
	lines   []KataLine
	changed chan struct{} // closed and replaced when lines grow or the stream ends
	ended   bool
	err     error
}

// openLogPort connects to the agent's log port through guestprobe and reads
// it until the test ends.
func openLogPort(t *testing.T, v *VM) *logStream {
	t.Helper()
	addr, err := v.Relay(logVport)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := &logStream{changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := ReadKataLines(conn, func(l KataLine) bool {
			s.mu.Lock()
			s.lines = append(s.lines, l)
			s.notifyLocked()
			s.mu.Unlock()
			return true
		})
		s.mu.Lock()
		s.ended, s.err = true, err
		s.notifyLocked()
		s.mu.Unlock()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

func (s *logStream) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitFor returns the first line that matches, waiting for it to arrive.
func (s *logStream) waitFor(t *testing.T, what string, match func(KataLine, AgentRecord) bool) (KataLine, AgentRecord) {
	t.Helper()
	timeout := time.After(bootBound)
	for i := 0; ; {
		s.mu.Lock()
		for ; i < len(s.lines); i++ {
			if l := s.lines[i]; match(l, l.Record()) {
				s.mu.Unlock()
				return l, l.Record()
			}
		}
		changed, ended, err := s.changed, s.ended, s.err
		s.mu.Unlock()
		if ended {
			if err == nil {
				err = io.EOF
			}
			t.Fatalf("log port closed (%v) before %s arrived", err, what)
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no %s on the log port after %s", what, bootBound)
		}
	}
}

// snapshot returns the lines so far.
func (s *logStream) snapshot() []KataLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]KataLine(nil), s.lines...)
}

const consoleServing = "debug console serving a shell: for development images only"

func msgIs(msg string) func(KataLine, AgentRecord) bool {
	return func(_ KataLine, r AgentRecord) bool { return r.Msg() == msg }
}

// TestLogPortAndDebugConsole boots a development image the way runtime-rs
// boots a pod with debug on (agent.log_vport=1025) and with the debug
// console asked for, with an initdata disk whose policy refuses exec. It
// reads the log port with runtime-rs's rules and drives a shell on the
// console, both over AF_VSOCK through guestprobe.
func TestLogPortAndDebugConsole(t *testing.T) {
	a := artifacts(t)
	img := initdataImage(t, filepath.Join(a.Root, "policy", "rego", "allow-all-except-exec.rego"), nil)
	v := boot(t, VMConfig{
		Drives:      []string{img},
		VsockRelays: []uint32{logVport, consoleVport},
		Extra: []string{"agent.log=debug", "agent.log_vport=1025",
			"agent.debug_console", "agent.debug_console_vport=1026"},
	})
	c := connect(t, v)
	// The daemon's records before it serves, in order, at the level
	// runtime-rs must log each.
	startupRecords := []struct{ msg, level string }{
		{"log port serving", kataInfo},
		{"initdata binding not verified", kataWarn},
		{"attestation disabled", kataInfo},
		{"policy installed", kataInfo},
		{"agent serving", kataInfo},
	}
	// The runtime connects once its ttrpc connection is up, as here.
	logs := openLogPort(t, v)

	t.Run("startup-records", func(t *testing.T) {
		// Kept while nobody read the port, so the first reader sees the
		// start-up, in order, each at the level runtime-rs maps.
		logs.waitFor(t, `"agent serving"`, msgIs("agent serving"))
		lines := logs.snapshot()
		next := 0
		want := startupRecords
		for _, l := range lines {
			if next < len(want) && l.Record().Msg() == want[next].msg {
				if l.Level != want[next].level {
					t.Errorf("%q: runtime-rs logs it at %s, want %s (line %s)", want[next].msg, l.Level, want[next].level, l.Text)
				}
				next++
			}
		}
		if next < len(want) {
			t.Errorf("start-up records: %q missing or out of order; port had:\n%s", want[next].msg, joinLines(lines))
		}
		// The console comes up in a goroutine of its own: its record has
		// no fixed place among the others.
		l, _ := logs.waitFor(t, "debug console record", msgIs(consoleServing))
		if l.Level != kataWarn {
			t.Errorf("debug console record at %s, want WARN", l.Level)
		}
		for _, l := range lines {
			if r := l.Record(); r.Msg() == "policy installed" && !strings.Contains(r.Str("source"), "initdata") {
				t.Errorf("policy record %s: want the initdata policy", l.Text)
			}
			// Logged before the daemon starts: documented as console only.
			if l.Record().Msg() == "configuration loaded" {
				t.Errorf("configuration record on the log port: %s", l.Text)
			}
		}
	})

	t.Run("request-records", func(t *testing.T) {
		if _, err := c.Agent.GetGuestDetails(callCtx(t), &agentpb.GuestDetailsRequest{}); err != nil {
			t.Fatal(err)
		}
		l, _ := logs.waitFor(t, "GetGuestDetails rpc record", func(_ KataLine, r AgentRecord) bool {
			return r.Msg() == "rpc" && r.Str("method") == "GetGuestDetails"
		})
		if l.Level != kataDebug {
			t.Errorf("allowed request logged at %s, want DEBG: %s", l.Level, l.Text)
		}
		_, err := c.Agent.ExecProcess(callCtx(t), &agentpb.ExecProcessRequest{ContainerId: "e2e-logport", ExecId: "e2e-logport-exec"})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("ExecProcess under allow-all-except-exec: %v, want PermissionDenied", err)
		}
		l, r := logs.waitFor(t, "ExecProcess rpc record", func(_ KataLine, r AgentRecord) bool {
			return r.Msg() == "rpc" && r.Str("method") == "ExecProcess"
		})
		if l.Level != kataWarn || r.Str("code") != codes.PermissionDenied.String() || r.Str("container_id") != "e2e-logport" {
			t.Errorf("denied request: level %s, record %s; want WARN with PermissionDenied and the container id", l.Level, l.Text)
		}
	})

	t.Run("one-reader", func(t *testing.T) {
		// A second reader is turned away while the first is attached: its
		// connection closes without a byte, and the first reader hears it.
		addr, err := v.Relay(logVport)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(bootBound))
		got, err := io.ReadAll(conn)
		if err != nil || len(got) != 0 {
			t.Errorf("second reader got %q (%v), want nothing and EOF", got, err)
		}
		l, _ := logs.waitFor(t, "refusal record", msgIs("log reader refused: another reader is connected"))
		if l.Level != kataWarn {
			t.Errorf("refusal logged at %s, want WARN", l.Level)
		}
	})

	t.Run("debug-console", func(t *testing.T) {
		// The address is vsock's own spelling, "vm(4294967295):1026", not
		// the agent's "vsock://-1:1026": only the port is checked.
		if rec, ok := v.Console().Find(consoleServing); !ok || !strings.HasSuffix(rec.Str("addr"), ":1026") || rec.Str("shell") == "" {
			t.Fatalf("console record %v (found %v), want a shell served on port 1026", rec, ok)
		}
		addr, err := v.Relay(consoleVport)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(bootBound))
		// The terminal echoes the command as typed, "hi$((40+2))": only
		// the shell's output spells hi42.
		if _, err := io.WriteString(conn, "echo hi$((40+2))\n"); err != nil {
			t.Fatal(err)
		}
		out, err := readUntil(conn, "hi42")
		if err != nil {
			t.Fatalf("shell output %q: %v", out, err)
		}
		// Exiting the shell ends the session: the agent hangs up.
		if _, err := io.WriteString(conn, "exit\n"); err != nil {
			t.Fatal(err)
		}
		if rest, err := io.ReadAll(conn); err != nil {
			t.Fatalf("after exit: %v (read %q), want the agent to hang up", err, rest)
		}
		logs.waitFor(t, "session start record", msgIs("debug console session started"))
		l, r := logs.waitFor(t, "session end record", msgIs("debug console session ended"))
		if l.Level != kataInfo || r.Str("error") != "" {
			t.Errorf("session end: level %s, record %s; want INFO and no error (exit 0)", l.Level, l.Text)
		}
	})

	t.Run("levels-match-console", func(t *testing.T) {
		// Every record is on both sinks: the port's level is slog-rs's
		// spelling of the console's, and never one runtime-rs would read
		// as INFO by default.
		con := v.Console()
		onConsole := map[string]AgentRecord{}
		for _, r := range con.Agent {
			onConsole[r.Str("time")+"\x00"+r.Msg()] = r
		}
		missing := map[string]bool{consoleServing: true}
		for _, w := range startupRecords {
			missing[w.msg] = true
		}
		for _, l := range logs.snapshot() {
			r := l.Record()
			if r == nil {
				t.Errorf("log port line is not an agent record: %q", l.Text)
				continue
			}
			if l.Level != r.Str("level") {
				t.Errorf("level %q not one runtime-rs maps (it logs the line at %s): %s", r.Str("level"), l.Level, l.Text)
			}
			if strings.HasSuffix(r.Msg(), "log lines dropped") {
				t.Errorf("records dropped: %s", l.Text)
			}
			cr, ok := onConsole[r.Str("time")+"\x00"+r.Msg()]
			if !ok {
				continue // the console line may be cut by kernel output
			}
			delete(missing, r.Msg())
			if want := kataLevelOfGo(cr.Str("level")); l.Level != want {
				t.Errorf("%q: console level %s, port %s, want %s", r.Msg(), cr.Str("level"), l.Level, want)
			}
		}
		for msg := range missing {
			t.Errorf("%q: not found on both the console and the log port", msg)
		}
	})
}

// readUntil reads c until what it read contains want, c fails or 1 MiB has
// arrived.
func readUntil(c net.Conn, want string) (string, error) {
	var buf bytes.Buffer
	chunk := make([]byte, 4096)
	for buf.Len() < 1<<20 {
		n, err := c.Read(chunk)
		buf.Write(chunk[:n])
		if strings.Contains(buf.String(), want) {
			return buf.String(), nil
		}
		if err != nil {
			return buf.String(), err
		}
	}
	return buf.String(), errors.New("no match in 1 MiB")
}

func joinLines(lines []KataLine) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Level + " " + l.Text + "\n")
	}
	return b.String()
}
