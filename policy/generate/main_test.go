package generate

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/cocoon-tee/cocoon/agent/container"
)

// ownNetnsEnv marks the copy of this test binary that runs in a network
// namespace of its own.
const ownNetnsEnv = "COCOON_GENERATE_OWN_NETNS"

// TestMain lets the in-process agent re-execute this binary as container
// init, and runs the tests in a network namespace of their own: the agent
// writes a pause container's net.* sysctls (containerd's pod defaults)
// into the namespace it runs in, which must never be the machine's.
func TestMain(m *testing.M) {
	container.InitIfRequested()
	os.Exit(runInOwnNetns(m))
}

// runInOwnNetns re-executes the tests in a new network namespace with lo
// up (the test registry listens on 127.0.0.1). Without root the tests fail
// on their own root check, so they run where they are.
func runInOwnNetns(m *testing.M) int {
	if os.Getenv(ownNetnsEnv) != "" || os.Geteuid() != 0 {
		if os.Getenv(ownNetnsEnv) != "" {
			lo, err := netlink.LinkByName("lo")
			if err == nil {
				err = netlink.LinkSetUp(lo)
			}
			if err != nil {
				panic("lo in the tests' network namespace: " + err.Error())
			}
		}
		return m.Run()
	}
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), ownNetnsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		panic(err)
	}
	return 0
}
