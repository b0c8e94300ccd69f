package safepath

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// IsMountPoint reports whether p is the root of a mount: its device differs
// from its parent's, or it is its own parent (/). A path that cannot be
// read is not one. A bind mount from the same file system is not told
// apart; the callers (premounted storages, PID 1's base mounts) only need
// to know whether something was mounted there from elsewhere.
func IsMountPoint(p string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(filepath.Dir(p), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino
}
