package generate

import (
	"os"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// TestMain lets the in-process agent re-execute this binary as container
// init, and runs the tests in a network namespace of their own with lo up
// (the test registry listens on 127.0.0.1): the agent writes a pause
// container's net.* sysctls (containerd's pod defaults) into the namespace
// it runs in, which must never be the machine's.
func TestMain(m *testing.M) {
	container.InitIfRequested()
	os.Exit(testenv.RunInOwnNetns(m, "COCOON_GENERATE_OWN_NETNS", testenv.LoUp))
}
