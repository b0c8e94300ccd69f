package conformance_test

import (
	"os"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
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

// startConfidentialAgent is startAgent in confidential mode. The TEE is
// go-sev-guest's fake SNP device (there is no SNP hardware here) with an
// all-zero HOST_DATA and no initdata, so the agent serves its built-in
// confidential default policy.
func startConfidentialAgent(tb testing.TB) (agent, string) {
	tb.Helper()
	testenv.RequiresRoot(tb)
	cfg := testagent.Config(tb)
	cfg.Confidential = true
	fake, err := kbstest.NewFakeSNP(make([]byte, 32))
	if err != nil {
		tb.Fatal(err)
	}
	o := daemon.Options{}
	o.Attest.Root = tb.TempDir()
	o.Attest.SEVDevice = fake
	testagent.Start(tb, cfg, o)
	return agent{addr: cfg.ServerAddr, runDir: cfg.KataRunDir}, cfg.StateDir
}
