package conformance_test

import (
	"net"
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

func TestMain(m *testing.M) {
	// The in-process agent re-executes this binary as container init.
	container.InitIfRequested()
	// The in-process agent configures the network it runs in (UpdateRoutes
	// replaces the main table, the pod's net.* sysctls are written there),
	// so the tests run in a namespace of their own set up as a pod's.
	os.Exit(testenv.RunInOwnNetns(m, "COCOON_CONFORMANCE_POD_NETNS", setupPodNetwork))
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

// setupPodNetwork leaves the namespace as a CNI plugin leaves a pod's: lo
// up and eth0 (a veth whose peer stays here) with 10.88.0.5/16 and a
// default route through 10.88.0.1.
func setupPodNetwork() error {
	if err := testenv.LoUp(); err != nil {
		return err
	}
	mac, _ := net.ParseMAC("02:42:0a:58:00:05")
	eth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", MTU: 1500, HardwareAddr: mac}, PeerName: "cni0"}
	if err := netlink.LinkAdd(eth); err != nil {
		return err
	}
	addr, err := netlink.ParseAddr("10.88.0.5/16")
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(eth, addr); err != nil {
		return err
	}
	for _, l := range []netlink.Link{eth, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "cni0"}}} {
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
	}
	return netlink.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.ParseIP("10.88.0.1")})
}
