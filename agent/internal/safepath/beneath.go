package safepath

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The descriptor-based primitives below are for trees someone else may be
// changing while the agent works in them (layers being unpacked, volumes
// shared with the host or with other containers). A checked path string is
// only as good as the moment it was checked; a descriptor keeps naming the
// inode that was checked. Errors are the kernel's errno, wrapped in
// *os.PathError, so that callers decide what a symlink (ELOOP), an escape
// (EXDEV) or a file where a directory was expected (ENOTDIR) means to them.

// maxRetries bounds openat2's EAGAIN loop: the kernel returns EAGAIN when a
// rename elsewhere raced the lookup, and a hostile tree could keep renaming.
const maxRetries = 128

// OpenBeneath opens rel below the directory dirfd. Every component must be
// a real entry under dirfd: a symlink anywhere, the last component
// included, fails with ELOOP; an absolute rel, a ".." component (even one
// that would stay below dirfd) or a magic link fails with EXDEV. rel "" or
// "." is dirfd itself.
// O_NOFOLLOW and O_CLOEXEC are always added to flags.
func OpenBeneath(dirfd int, rel string, flags int) (int, error) {
	return openBeneath(dirfd, rel, flags, true)
}

// openBeneath is OpenBeneath; withOpenat2 false takes the fallback walk
// directly, so that tests cover it on kernels that have openat2.
func openBeneath(dirfd int, rel string, flags int, withOpenat2 bool) (int, error) {
	if rel == "" {
		rel = "."
	}
	if strings.ContainsRune(rel, 0) {
		return -1, &os.PathError{Op: "openat2", Path: rel, Err: unix.EINVAL}
	}
	if escapes(rel) {
		return -1, &os.PathError{Op: "openat2", Path: rel, Err: unix.EXDEV}
	}
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if withOpenat2 {
		fd, err := openat2(dirfd, rel, flags)
		if !errors.Is(err, unix.ENOSYS) {
			if err != nil {
				return -1, &os.PathError{Op: "openat2", Path: rel, Err: symlinkOrNotDir(dirfd, rel, err)}
			}
			// RESOLVE_NO_SYMLINKS hands out a trailing symlink itself when
			// O_PATH|O_NOFOLLOW is asked for; refused like any other.
			if err := refuseSymlink(fd); err != nil {
				unix.Close(fd)
				return -1, &os.PathError{Op: "openat2", Path: rel, Err: err}
			}
			return fd, nil
		}
	}
	fd, err := walkBeneath(dirfd, rel, flags)
	if err != nil {
		return -1, &os.PathError{Op: "openat", Path: rel, Err: err}
	}
	return fd, nil
}

func openat2(dirfd int, rel string, flags int) (int, error) {
	how := &unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	var err error
	for range maxRetries {
		var fd int
		fd, err = unix.Openat2(dirfd, rel, how)
		if err != unix.EAGAIN && err != unix.EINTR {
			return fd, err
		}
	}
	return -1, err
}

// walkBeneath is OpenBeneath for kernels without openat2 (before 5.6): one
// openat per component with O_NOFOLLOW, which refuses symlinks rather than
// resolving them, and ".." refused outright so nothing can climb out.
func walkBeneath(dirfd int, rel string, flags int) (int, error) {
	parts := strings.Split(rel, "/")
	fd, err := unix.Openat(dirfd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for i, c := range parts {
		if c == "" || c == "." {
			if i < len(parts)-1 {
				continue
			}
		}
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(parts)-1 {
			f = flags
		}
		next, err := unix.Openat(fd, c, f, 0)
		if err != nil {
			err = symlinkOrNotDir(fd, c, err)
			unix.Close(fd)
			return -1, err
		}
		unix.Close(fd)
		fd = next
	}
	if err := refuseSymlink(fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// escapes reports whether rel is absolute or has a ".." component. Both
// primitives refuse them up front, so that the openat2 path and the
// fallback walk agree.
func escapes(rel string) bool {
	if strings.HasPrefix(rel, "/") {
		return true
	}
	for _, c := range strings.Split(rel, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// symlinkOrNotDir turns the ENOTDIR that O_DIRECTORY|O_NOFOLLOW gives for a
// symlink into ELOOP, so a symlink reads as one whatever the flags were.
func symlinkOrNotDir(dirfd int, rel string, err error) error {
	if !errors.Is(err, unix.ENOTDIR) {
		return err
	}
	var st unix.Stat_t
	if unix.Fstatat(dirfd, rel, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.ELOOP
	}
	return err
}

func refuseSymlink(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.ELOOP
	}
	return nil
}

// MkdirBeneath opens the directory rel below dirfd, creating the missing
// components with exactly mode (the umask does not narrow it), and returns
// a read-only directory descriptor with the components it created (relative
// to dirfd, outermost first). The rules of OpenBeneath hold for every
// component. before, when not nil, is called with each missing component
// before it is created; its error stops the walk.
func MkdirBeneath(dirfd int, rel string, mode uint32, before func(rel string) error) (fd int, created []string, err error) {
	return mkdirBeneath(dirfd, rel, mode, before, true)
}

func mkdirBeneath(dirfd int, rel string, mode uint32, before func(string) error, withOpenat2 bool) (int, []string, error) {
	const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY
	fd, err := openBeneath(dirfd, ".", dirFlags, withOpenat2)
	if err != nil {
		return -1, nil, err
	}
	if rel == "" || rel == "." {
		return fd, nil, nil
	}
	if escapes(rel) {
		unix.Close(fd)
		return -1, nil, &os.PathError{Op: "mkdirat", Path: rel, Err: unix.EXDEV}
	}
	var created []string
	done := ""
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		done = joinRel(done, c)
		next, err := openBeneath(fd, c, dirFlags, withOpenat2)
		made := false
		if errors.Is(err, unix.ENOENT) {
			if before != nil {
				if err := before(done); err != nil {
					unix.Close(fd)
					return -1, nil, err
				}
			}
			err = unix.Mkdirat(fd, c, mode)
			switch {
			case err == nil:
				made = true
			case errors.Is(err, unix.EEXIST):
				// Made by someone else meanwhile: opened like any other.
			default:
				unix.Close(fd)
				return -1, nil, &os.PathError{Op: "mkdirat", Path: done, Err: err}
			}
			next, err = openBeneath(fd, c, dirFlags, withOpenat2)
		}
		unix.Close(fd)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				pe.Path = done
			}
			return -1, nil, err
		}
		fd = next
		if made {
			created = append(created, done)
			if err := unix.Fchmod(fd, mode); err != nil {
				unix.Close(fd)
				return -1, nil, &os.PathError{Op: "fchmod", Path: done, Err: err}
			}
		}
	}
	return fd, created, nil
}

func joinRel(a, b string) string {
	if a == "" {
		return b
	}
	return a + "/" + b
}

// MountPoint is a place to mount onto, held by a descriptor (read-only for
// a directory, so it can be chowned and chmodded too; O_PATH for a file,
// which is never opened for real): the mount goes through ProcPath, so it lands on the inode that was checked
// even if the path is swapped for a symlink afterwards.
type MountPoint struct {
	// Path is the mount point as the kernel shows it (root joined with rel).
	Path string
	// Created are the directories, and the file, that OpenMountPoint
	// made, as absolute paths, outermost first.
	Created []string
	file    *os.File
}

// ProcPath is the descriptor's magic link, the target to hand mount(2).
func (m *MountPoint) ProcPath() string { return fmt.Sprintf("/proc/self/fd/%d", m.file.Fd()) }

// Fd is the descriptor.
func (m *MountPoint) Fd() int { return int(m.file.Fd()) }

// Close releases the descriptor; the mount point itself stays.
func (m *MountPoint) Close() error {
	if m == nil || m.file == nil {
		return nil
	}
	err := m.file.Close()
	m.file = nil
	return err
}

// OpenMountPoint creates (when missing) and opens the mount point rel below
// root: a directory, or with file an empty regular file (an existing entry
// must be a regular file). root must be absolute with its symlinks already
// resolved; below it the rules of OpenBeneath hold. The descriptor is
// checked to name root/rel exactly, so a rename racing the walk is refused.
// On error nothing it created is left behind.
func OpenMountPoint(root, rel string, file bool) (*MountPoint, error) {
	return openMountPoint(root, rel, file, true)
}

func openMountPoint(root, rel string, file, withOpenat2 bool) (*MountPoint, error) {
	if err := checkPath(rel); err != nil {
		return nil, err
	}
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootFD)
	dir, base := rel, ""
	if file {
		dir, base = splitRel(rel)
	}
	fd, created, err := mkdirBeneath(rootFD, dir, 0o755, nil, withOpenat2)
	if err != nil {
		return nil, err
	}
	m := &MountPoint{Path: joinAbs(root, rel)}
	for _, c := range created {
		m.Created = append(m.Created, joinAbs(root, c))
	}
	if file {
		pfd := fd
		fd, err = openFileBeneath(pfd, base, withOpenat2, m)
		unix.Close(pfd)
		if err != nil {
			m.removeCreated()
			return nil, err
		}
	}
	m.file = os.NewFile(uintptr(fd), m.Path)
	if real, err := os.Readlink(m.ProcPath()); err != nil || real != m.Path {
		m.Close()
		m.removeCreated()
		return nil, &os.PathError{Op: "open mount point", Path: m.Path, Err: unix.EXDEV}
	}
	return m, nil
}

// openFileBeneath creates base in the directory pfd when it is missing and
// returns an O_PATH descriptor on it; an existing entry must be a regular
// file (opening it any other way could run a device's open).
func openFileBeneath(pfd int, base string, withOpenat2 bool, m *MountPoint) (int, error) {
	nfd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	switch {
	case err == nil:
		unix.Close(nfd)
		m.Created = append(m.Created, m.Path)
	case !errors.Is(err, unix.EEXIST):
		return -1, &os.PathError{Op: "create", Path: m.Path, Err: err}
	}
	fd, err := openBeneath(pfd, base, unix.O_PATH, withOpenat2)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		if err == nil {
			err = unix.EEXIST
		}
		return -1, &os.PathError{Op: "open file mount point", Path: m.Path, Err: err}
	}
	return fd, nil
}

// removeCreated deletes what OpenMountPoint made, innermost first; a
// directory someone has put something into stays.
func (m *MountPoint) removeCreated() {
	for i := len(m.Created) - 1; i >= 0; i-- {
		_ = os.Remove(m.Created[i])
	}
}

func splitRel(rel string) (dir, base string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return ".", rel
	}
	return rel[:i], rel[i+1:]
}

func joinAbs(root, rel string) string {
	if rel == "" || rel == "." {
		return root
	}
	return strings.TrimSuffix(root, "/") + "/" + rel
}
