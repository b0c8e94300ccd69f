package testagent

import (
	"strings"
	"testing"
)

// Two tests, in this process or in two test binaries run at once by
// go test ./..., must never share a cgroup parent: the first one to end
// would remove a parent the other is still creating containers under.
func TestCgroupParentIsUnique(t *testing.T) {
	parents := map[string]string{}
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			p := Config(t).CgroupParent
			if other, ok := parents[p]; ok {
				t.Errorf("subtests %s and %s share cgroup parent %s", other, name, p)
			}
			parents[p] = name
			// The name must carry something no other test process has: the
			// test's own temp dir, not just a sequence number.
			if !strings.Contains(p, "TestCgroupParentIsUnique") {
				t.Errorf("cgroup parent %s does not name the test's own temp dir", p)
			}
		})
	}
}

// Every hierarchy libcontainer creates a container's cgroup in is cleaned,
// including cgroup v1's named systemd hierarchy.
func TestCgroupDirsCoverSystemd(t *testing.T) {
	for _, d := range CgroupDirs("/x") {
		if d == "/sys/fs/cgroup/systemd/x" {
			return
		}
	}
	t.Errorf("CgroupDirs misses the name=systemd hierarchy: %v", CgroupDirs("/x"))
}
