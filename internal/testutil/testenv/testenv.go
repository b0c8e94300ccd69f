// Package testenv holds helpers shared by tests that run real containers:
// the root check and a busybox-static root file system.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequiresRoot fails (never skips) a test that needs root: CI runs as root,
// so a missing privilege is a broken environment, not a reason to pass.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (real mounts, cgroups and namespaces)")
	}
}

// Busybox is where Debian's busybox-static installs the binary.
const Busybox = "/bin/busybox"

// BusyboxRootfs fills dir with a minimal root file system: busybox-static
// and a symlink per applet, plus the directories a container expects.
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(Busybox)
	if err != nil {
		t.Fatalf("busybox-static is needed (apt-get install busybox-static): %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(Busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// KataRootfs lays out a busybox rootfs where the Kata runtime puts a
// container's rootfs under the agent's run dir, and returns its path.
func KataRootfs(t testing.TB, runDir, cid string) string {
	t.Helper()
	r := filepath.Join(runDir, "shared", "containers", cid, "rootfs")
	BusyboxRootfs(t, r)
	return r
}
