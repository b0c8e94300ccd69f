package safepath

import (
	"path/filepath"
	"testing"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

func TestIsMountPoint(t *testing.T) {
	mnt := testenv.SmallTmpfs(t, "64k")
	dir := filepath.Dir(mnt)
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
