package conformance_test

import (
	"os"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/ci/testagent"
	"github.com/cocoon-tee/cocoon/ci/testenv"
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
	cfg := testagent.Config(tb)
	testagent.Start(tb, cfg, daemon.Options{})
	return agent{addr: cfg.ServerAddr, runDir: cfg.KataRunDir}
}
