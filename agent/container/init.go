package container

import (
	"os"

	// The device-rules manager must be linked in for cgroup device
	// restrictions to be applied (libcontainer refuses otherwise).
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	// nsenter's C constructor enters the container's namespaces before the
	// Go runtime starts when the agent is re-executed as a container init.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// InitIfRequested turns the process into a container's init when
// libcontainer re-executed the agent as "<agent> init"; it then never
// returns. main (and TestMain of packages that run containers) calls it
// first thing.
func InitIfRequested() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
	}
}
