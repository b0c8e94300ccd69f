package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// CgroupParent returns a cgroup parent no other test shares, in this test
// binary or in another one running at the same time (go test ./... runs
// packages in parallel), and removes it from every hierarchy when the test
// ends. The name comes from the test's own temp dir, which os.MkdirTemp made
// unique on the machine; the dir's last element alone ("001") is not.
func CgroupParent(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	parent := "/cocoon-test-" + filepath.Base(filepath.Dir(dir)) + "-" + filepath.Base(dir)
	tb.Cleanup(func() {
		for _, d := range CgroupDirs(parent) {
			os.Remove(d)
		}
	})
	return parent
}

// CgroupDirs lists where parent lives in every hierarchy a test machine may
// mount: the cgroup v1 controllers, v1's named systemd hierarchy (which
// libcontainer joins too) and the unified one.
func CgroupDirs(parent string) []string {
	var out []string
	for _, h := range []string{"memory", "pids", "cpu", "cpuacct", "freezer", "blkio", "devices", "cpuset", "hugetlb", "net_cls", "perf_event", "systemd", "unified", ""} {
		out = append(out, filepath.Join("/sys/fs/cgroup", h, parent))
	}
	return out
}
