package safepath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestValidateID(t *testing.T) {
	for _, id := range []string{"abc", "0123456789abcdef", strings.Repeat("a", MaxID), "a.b-c_d"} {
		if err := ValidateID("container", id); err != nil {
			t.Errorf("%q rejected: %v", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "a/b", "../x", "a\x00b", strings.Repeat("a", MaxID+1)} {
		if err := ValidateID("container", id); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: got %v, want invalid argument", id, err)
		}
	}
}

func TestJoinStaysInside(t *testing.T) {
	root := t.TempDir()
	os.Symlink("/etc", filepath.Join(root, "abs"))
	os.Symlink("../../..", filepath.Join(root, "up"))
	for _, unsafe := range []string{"../../etc/passwd", "/abs/passwd", "up/etc/passwd", "a/../../b"} {
		p, err := Join(root, unsafe)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p, root+"/") {
			t.Errorf("Join(%q) = %q escapes %q", unsafe, p, root)
		}
	}
	if _, err := Join(root, "a\x00b"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("NUL accepted: %v", err)
	}
}

func TestWithin(t *testing.T) {
	pre := "/run/kata-containers"
	for _, p := range []string{"/run/kata-containers", "/run/kata-containers/c1/rootfs"} {
		if err := Within(p, pre); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"/run/kata-containers-evil/x", "/etc", "/run/kata-containers/../x", "relative", ""} {
		if err := Within(p, pre); err == nil {
			t.Errorf("%s accepted", p)
		}
	}
}

func FuzzJoin(f *testing.F) {
	root := f.TempDir()
	os.Symlink("/", filepath.Join(root, "l"))
	for _, s := range []string{"a", "../b", "/l/x", "l/../../y", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, unsafe string) {
		p, err := Join(root, unsafe)
		if err != nil {
			return
		}
		if p != root && !strings.HasPrefix(p, root+"/") {
			t.Fatalf("Join(%q) = %q escapes %q", unsafe, p, root)
		}
	})
}
