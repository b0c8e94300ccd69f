//go:build !katacompat

package policy_test

import (
	"testing"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// kataPolicy has nothing to offer without -tags katacompat: Kata's rules
// are not part of this repository (see ci/kata-compat.sh).
func kataPolicy(testing.TB) (string, *agentpb.CreateContainerRequest) { return "", nil }
