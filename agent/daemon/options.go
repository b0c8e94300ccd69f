package daemon

import (
	"net"

	"github.com/cocoon-tee/cocoon/agent/attest"
)

// Options are the daemon's injection points besides its configuration.
type Options struct {
	// Ready, when set, is called with the listener's address once the agent
	// accepts connections.
	Ready func(net.Addr)
	// Attest replaces TEE probing. Only tests set it, to stand fake TEE
	// devices in for absent hardware; the agent binary probes the machine.
	Attest attest.Options
	// PauseBundle replaces the guest image's /pause_bundle. Only tests set
	// it: a test machine has no guest image to take the pause container
	// from.
	PauseBundle string
}
