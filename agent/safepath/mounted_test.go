package safepath

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/ci/testenv"
)

func TestIsMountPoint(t *testing.T) {
	testenv.RequiresRoot(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/", true},
		{mnt, true},
		{dir, false},
		{filepath.Join(dir, "missing"), false},
	} {
		if got := IsMountPoint(tc.path); got != tc.want {
			t.Errorf("IsMountPoint(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}
