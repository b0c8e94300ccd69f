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

// When libcontainer re-executes the agent as "<agent> init", the Go half of
// the container init runs here, during package initialisation, where the
// runtime keeps the main goroutine on the main thread. libcontainer.Init
// locks its goroutine to the thread it is on, and that thread makes the
// final execve of the workload. From main() the goroutine may already sit on
// another thread; the execve then has to replace the thread-group leader
// first, and while it does, /proc/<pid>/exe and /proc/<pid>/ns/* do not
// resolve: an exec into the container fails to join its namespaces and
// Start cannot see the workload start. The environment check keeps a
// command line that merely starts with "init" from being taken for one.
func init() {
	if isContainerInit() {
		libcontainer.Init()
	}
}

func isContainerInit() bool {
	return len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_LIBCONTAINER_INITPIPE") != ""
}

// InitIfRequested turns the process into a container's init when
// libcontainer re-executed the agent as "<agent> init"; it then never
// returns. The package's init function has already done so for every init
// libcontainer starts; main (and TestMain of packages that run containers)
// still calls it first thing, so that "<agent> init" without libcontainer's
// environment fails as libcontainer reports it.
func InitIfRequested() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
	}
}
