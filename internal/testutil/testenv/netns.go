package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

// RunInOwnNetns runs a test binary's tests in a network namespace of their
// own, for tests whose in-process agent configures the network it runs in
// (routes, the pod's net.* sysctls), which must never be the machine's. As
// root it re-executes the binary in a new network namespace, with marker
// set in the copy's environment, and returns the copy's exit code; the copy
// runs setup (LoUp at least), then the tests. Without root the tests run
// where they are: they fail or skip on their own root check.
//
// marker names the environment variable; each package takes its own, so a
// test binary started from another's tests still gets a namespace.
func RunInOwnNetns(m *testing.M, marker string, setup func() error) int {
	if os.Getenv(marker) != "" {
		if err := setup(); err != nil {
			panic(fmt.Sprintf("the tests' network namespace: %v", err))
		}
		return m.Run()
	}
	if os.Geteuid() != 0 {
		return m.Run()
	}
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), marker+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		panic(err)
	}
	return 0
}

// LoUp brings up the loopback interface of the current network namespace
// (a new one starts with it down; test registries listen on 127.0.0.1).
func LoUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}
