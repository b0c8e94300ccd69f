// Package testagent runs the real agent (daemon.RunWith) inside a test on a
// unix socket, with every directory it writes in the test's temp dirs, and
// stops it when the test ends.
package testagent

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/tools/client"
)

// Config is the default configuration with the socket, decision log, Kata
// run dir and state dir in a fresh temp dir, and containers in a cgroup of
// the test's own, so a test never touches the machine's /run or another test
// process's containers. The agent is not the guest's init, whatever the
// test process's pid: it never sets up, scans or powers off the machine.
func Config(tb testing.TB) config.Config {
	dir := tb.TempDir()
	cfg := config.Default()
	cfg.GuestInit = false
	cfg.ServerAddr = "unix://" + filepath.Join(dir, "agent.sock")
	cfg.DecisionLog = filepath.Join(dir, "decisions.log")
	cfg.KataRunDir = filepath.Join(dir, "run")
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.CgroupParent = testenv.CgroupParent(tb)
	return cfg
}

// CgroupDirs lists where parent lives in every cgroup hierarchy.
func CgroupDirs(parent string) []string { return testenv.CgroupDirs(parent) }

// Start runs the agent with cfg until the test ends and returns a client
// connected to it. An agent that fails to start fails the test; one that
// fails to shut down cleanly does too.
func Start(tb testing.TB, cfg config.Config, o daemon.Options) *client.Client {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	o.Ready = func(a net.Addr) { ready <- a }
	go func() { done <- daemon.RunWith(ctx, cfg, slog.New(slog.DiscardHandler), o) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		tb.Fatalf("agent exited: %v", err)
	}
	c, err := client.Dial(ctx, cfg.ServerAddr)
	if err != nil {
		cancel()
		<-done
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("agent shutdown: %v", err)
		}
	})
	return c
}
