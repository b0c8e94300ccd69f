package conformance_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/internal/testenv"
)

func TestMain(m *testing.M) {
	// The in-process agent re-executes this binary as container init.
	container.InitIfRequested()
	os.Exit(m.Run())
}

// agent is a real cocoon agent serving on a unix socket in this process,
// with its own Kata run directory and state directory.
type agent struct {
	addr, runDir string
}

func startAgent(tb testing.TB) agent {
	tb.Helper()
	testenv.RequiresRoot(tb)
	dir := tb.TempDir()
	cfg := config.Default()
	cfg.ServerAddr = "unix://" + filepath.Join(dir, "agent.sock")
	cfg.DecisionLog = filepath.Join(dir, "decisions.log")
	cfg.KataRunDir = filepath.Join(dir, "kata")
	cfg.StateDir = filepath.Join(dir, "state")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, cfg, slog.New(slog.DiscardHandler), func(a net.Addr) { ready <- a }) }()
	select {
	case <-ready:
	case err := <-done:
		tb.Fatalf("agent exited: %v", err)
	}
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("agent shutdown: %v", err)
		}
	})
	return agent{addr: cfg.ServerAddr, runDir: cfg.KataRunDir}
}
