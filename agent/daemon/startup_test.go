package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
)

// lockedBuffer is a log sink the agent's goroutines may write at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The "agent serving" line carries the agent's own share of boot: the time
// since its process started and each start-up phase, so a VM's console
// log shows where the boot went.
func TestServingLineTimesStartup(t *testing.T) {
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.RunWith(ctx, testagent.Config(t), slog.New(slog.NewJSONHandler(&logs, nil)), daemon.Options{Ready: func(a net.Addr) { ready <- a }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent exited: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Msg     string             `json:"msg"`
		Startup map[string]float64 `json:"startup"`
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"agent serving"`) {
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	if rec.Msg == "" {
		t.Fatalf("no agent serving line in:\n%s", logs.String())
	}
	var phases float64
	for _, k := range []string{"system_ms", "trust_ms", "policy_ms", "services_ms", "listen_ms"} {
		v, ok := rec.Startup[k]
		if !ok || v < 0 {
			t.Errorf("startup %s = %v, %v: %v", k, v, ok, rec.Startup)
		}
		phases += v
	}
	// The start time comes in clock ticks (10 ms); the phases are exact.
	if exec := rec.Startup["since_start_ms"]; exec <= 0 || exec+10 < phases {
		t.Errorf("since_start_ms %v against %v ms of phases: %v", exec, phases, rec.Startup)
	}
	if _, ok := rec.Startup["before_run_ms"]; !ok {
		t.Errorf("no before_run_ms: %v", rec.Startup)
	}
	if up := rec.Startup["uptime_ms"]; up < rec.Startup["since_start_ms"] {
		t.Errorf("uptime_ms %v below since_start_ms: %v", up, rec.Startup)
	}
}
