package storage

import (
	"errors"
	"fmt"
	"path"
	"strconv"

	"golang.org/x/sys/unix"
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

// maxFSGroupDepth bounds the walk. Each level keeps its directory open, and
// how deep a shared volume goes is up to the containers writing to it.
const maxFSGroupDepth = 1024

// applyFSGroup gives the volume at path to the pod's fsGroup. With the
// OnRootMismatch policy a volume whose root already has the group and the
// bits is left alone, which keeps big volumes from being walked on every
// container start.
//
// Other containers may be changing the volume while it is walked, so the
// walk never resolves a path: every entry is opened relative to its parent's
// descriptor with O_NOFOLLOW and changed through its own descriptor. A
// symlink is never followed, never descended and never chmod'ed; only the
// link itself joins the group, as Kubernetes does. Mounts inside the volume
// are left alone.
func applyFSGroup(path string, g *FSGroup, readOnly bool) error {
	if g == nil {
		return nil
	}
	w := fsGroupWalk{gid: g.GroupID, mask: rwMask}
	if readOnly {
		w.mask = roMask
	}
	if err := w.run(path, g.OnRootMismatch); err != nil {
		return fmt.Errorf("fs_group %d on %s: %w", g.GroupID, path, err)
	}
	return nil
}

type fsGroupWalk struct {
	gid  uint32
	mask uint32
	// mount identifies the volume root's mount; entries on any other mount
	// are skipped.
	mount mountKey
}

// mountKey names the mount an inode was reached through: the mount id where
// the kernel reports it (5.8 and later), which tells bind mounts of the
// same file system apart, else the device.
type mountKey struct{ id, dev uint64 }

func mountOf(st *unix.Statx_t) mountKey {
	k := mountKey{dev: unix.Mkdev(st.Dev_major, st.Dev_minor)}
	if st.Mask&unix.STATX_MNT_ID != 0 {
		k.id = st.Mnt_id
	}
	return k
}

func (w *fsGroupWalk) run(path string, onRootMismatch bool) error {
	fd, isDir, err := openNoFollow(unix.AT_FDCWD, path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	st, err := statFD(fd)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return errors.New("the volume root is a symlink")
	}
	w.mount = mountOf(&st)
	if onRootMismatch {
		want := uint16(w.mask | execMask)
		if st.Gid == w.gid && st.Mode&want == want && st.Mode&setgid != 0 {
			return nil
		}
	}
	return w.entry(fd, isDir, &st, ".", 0)
}

// entry hands one opened entry to the group and, for a directory, walks it.
// rel is its path in the volume, for errors only.
func (w *fsGroupWalk) entry(fd int, isDir bool, st *unix.Statx_t, rel string, depth int) error {
	if mountOf(st) != w.mount {
		return nil // another file system's, or another bind mount's
	}
	if err := w.own(fd, isDir, st); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if !isDir {
		return nil
	}
	if depth >= maxFSGroupDepth {
		return fmt.Errorf("%s: directories nested deeper than %d", rel, maxFSGroupDepth)
	}
	return w.children(fd, rel, depth+1)
}

// own changes the group and mode of one entry through its descriptor.
func (w *fsGroupWalk) own(fd int, isDir bool, st *unix.Statx_t) error {
	typ := uint32(st.Mode) & unix.S_IFMT
	if typ == unix.S_IFLNK {
		return unix.Fchownat(fd, "", -1, int(w.gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
	}
	if typ == unix.S_IFDIR && !isDir {
		// It was replaced by a directory between the two opens in
		// openNoFollow; the descriptor in hand cannot list it.
		return errors.New("an entry changed into a directory during the walk")
	}
	if st.Gid != w.gid {
		if err := unix.Fchownat(fd, "", -1, int(w.gid), unix.AT_EMPTY_PATH); err != nil {
			return err
		}
		// The kernel may clear setuid/setgid on chown; build on what is left.
		var err error
		if *st, err = statFD(fd); err != nil {
			return err
		}
	}
	mode := uint32(st.Mode) & 0o7777
	want := mode | w.mask
	if isDir {
		want |= execMask | setgid
	}
	if want == mode {
		return nil
	}
	return chmodFD(fd, isDir, want)
}

// children walks the entries of the directory open at dirfd.
func (w *fsGroupWalk) children(dirfd int, rel string, depth int) error {
	buf := make([]byte, 8<<10)
	var names []string
	for {
		n, err := unix.Getdents(dirfd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if n == 0 {
			return nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names[:0])
		for _, name := range names {
			if err := w.child(dirfd, name, path.Join(rel, name), depth); err != nil {
				return err
			}
		}
	}
}

func (w *fsGroupWalk) child(dirfd int, name, rel string, depth int) error {
	fd, isDir, err := openNoFollow(dirfd, name)
	if errors.Is(err, unix.ENOENT) {
		return nil // removed since it was listed: nothing to hand over
	}
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	defer unix.Close(fd)
	st, err := statFD(fd)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return w.entry(fd, isDir, &st, rel, depth)
}

// openNoFollow opens name under dirfd without following a symlink: a
// directory as one (so that it can be listed and changed through its
// descriptor), anything else with O_PATH, which names the entry itself and
// never runs a device's open.
func openNoFollow(dirfd int, name string) (fd int, isDir bool, err error) {
	fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		return fd, true, nil
	}
	if err != unix.ENOTDIR && err != unix.ELOOP {
		return -1, false, err
	}
	fd, err = unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	return fd, false, err
}

func statFD(fd int) (unix.Statx_t, error) {
	var st unix.Statx_t
	err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW,
		unix.STATX_TYPE|unix.STATX_MODE|unix.STATX_GID|unix.STATX_MNT_ID, &st)
	return st, err
}

// chmodFD changes the mode of the inode fd refers to. A directory descriptor
// takes fchmod; an O_PATH one needs fchmodat2 (Linux 6.6) with an empty
// path, or else chmod through /proc/self/fd, which names the same inode
// without resolving anything in the volume. Never called on a symlink.
func chmodFD(fd int, isDir bool, mode uint32) error {
	if isDir {
		return unix.Fchmod(fd, mode)
	}
	err := unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
	if err != unix.EOPNOTSUPP && err != unix.ENOSYS {
		return err
	}
	return chmodProcFD(fd, mode)
}

func chmodProcFD(fd int, mode uint32) error {
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// chgrpSetgid hands a fresh directory to gid with setgid, which is what the
// "fsgid=N" option of local and ephemeral volumes asks for. It works on the
// directory's descriptor so that a symlink put in its place is refused.
func chgrpSetgid(path string, gid int64) error {
	if gid < 0 {
		return nil
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsgid %d on %s: %w", gid, path, err)
	}
	defer unix.Close(fd)
	return chgrpSetgidFD(fd, path, gid)
}

// chgrpSetgidFD is chgrpSetgid on a directory already open (path names it
// in errors only).
func chgrpSetgidFD(fd int, path string, gid int64) error {
	if gid < 0 {
		return nil
	}
	if err := unix.Fchown(fd, -1, int(gid)); err != nil {
		return fmt.Errorf("fsgid %d on %s: %w", gid, path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fsgid %d on %s: %w", gid, path, err)
	}
	if err := unix.Fchmod(fd, st.Mode&0o7777|setgid); err != nil {
		return fmt.Errorf("fsgid %d on %s: %w", gid, path, err)
	}
	return nil
}
