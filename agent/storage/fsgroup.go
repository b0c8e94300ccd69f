package storage

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/protocols/typespb"
)

// Permission bits a pod's fsGroup gets on a volume, as Kubernetes (and the
// Kata agent) grant them: group read/write (read only for ro volumes),
// group search on directories, and setgid on directories so new files
// inherit the group.
const (
	rwMask   = 0o660
	roMask   = 0o440
	execMask = 0o110
	setgid   = 0o2000
)

// applyFSGroup gives the volume at path to the pod's fsGroup. With the
// OnRootMismatch policy a volume whose root already has the group and the
// bits is left alone, which keeps big volumes from being walked on every
// container start.
func applyFSGroup(path string, g *agentpb.FSGroup, readOnly bool) error {
	if g == nil {
		return nil
	}
	mask := os.FileMode(rwMask)
	if readOnly {
		mask = roMask
	}
	if g.GroupChangePolicy == typespb.FSGroupChangePolicy_OnRootMismatch {
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return fmt.Errorf("fs_group: %w", err)
		}
		want := uint32(mask | execMask)
		if st.Gid == g.GroupId && st.Mode&want == want && st.Mode&setgid != 0 {
			return nil
		}
	}
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // the target is someone else's; Lchown would only touch the link
		}
		if err := os.Lchown(p, -1, int(g.GroupId)); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m := mask
		if d.IsDir() {
			m |= execMask | os.ModeSetgid
		}
		return os.Chmod(p, info.Mode()|m)
	})
	if err != nil {
		return fmt.Errorf("fs_group %d on %s: %w", g.GroupId, path, err)
	}
	return nil
}

// chgrpSetgid hands a fresh directory to gid with setgid, which is what the
// "fsgid=N" option of local and ephemeral volumes asks for.
func chgrpSetgid(path string, gid int64) error {
	if gid < 0 {
		return nil
	}
	if err := os.Lchown(path, -1, int(gid)); err != nil {
		return fmt.Errorf("fsgid %d on %s: %w", gid, path, err)
	}
	info, err := os.Lstat(path)
	if err != nil {
		return err
	}
	return os.Chmod(path, info.Mode()|os.ModeSetgid)
}
