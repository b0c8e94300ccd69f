package container

import "github.com/opencontainers/runc/libcontainer/seccomp"

// SeccompSupported reports whether this agent can apply seccomp filters:
// libcontainer's filter code is compiled only with cgo, the seccomp build
// tag and libseccomp linked in. GetGuestDetails must not promise seccomp
// when this is false.
func SeccompSupported() bool { return seccomp.Enabled }
