//go:build katacompat

package policy_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Kata's genpolicy rules and test cases are not part of this repository:
// ci/kata-compat.sh extracts them from a Kata Containers checkout into a
// directory and runs these tests with KATA_TESTDATA pointing at it.

// kataFile reads one of the extracted Kata files.
func kataFile(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("KATA_TESTDATA")
	if dir == "" {
		t.Fatal("-tags katacompat needs KATA_TESTDATA (see ci/kata-compat.sh)")
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// kataPolicy is the genpolicy-scale policy and the sandbox CreateContainer
// request it allows.
func kataPolicy(t testing.TB) (string, *agentpb.CreateContainerRequest) {
	return genpolicyScale(t)
}
