package container

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// libcontainer re-executes the agent for every container init and every
// exec, and this package's package-level initialisers run in that child
// before its init function hands it to libcontainer. Whatever they do is
// paid again for each of those processes, so they must do nothing: work
// belongs in the functions that use it. (The test files of the package are
// part of what is measured, so they keep no package-level state either.)
func TestPackageInitDoesNoWork(t *testing.T) {
	// The runtime's GODEBUG=inittrace=1 line for this package
	// (runtime/proc.go, doInit1).
	line := regexp.MustCompile(`(?m)^init github\.com/cocoon-tee/cocoon/agent/container @\S+ ms, \S+ ms clock, (\d+) bytes, (\d+) allocs$`)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	m := line.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no inittrace line for this package in:\n%s", out)
	}
	bytes, _ := strconv.Atoi(string(m[1]))
	allocs, _ := strconv.Atoi(string(m[2]))
	if bytes != 0 || allocs != 0 {
		t.Errorf("package initialisation allocated %d bytes in %d allocations: %s", bytes, allocs, m[0])
	}
}
