package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
)

// root is one directory under which mount points may live. The configured
// spelling is what host paths are compared with; resolved is the same
// directory with symlinks resolved, which is what the kernel will report.
type root struct {
	configured, resolved string
}

// roots are the allowed mount-point prefixes.
type roots []root

func newRoots(dirs []string) (roots, error) {
	var out roots
	for _, d := range dirs {
		if d == "" {
			continue
		}
		d = filepath.Clean(d)
		if !filepath.IsAbs(d) {
			return nil, fmt.Errorf("storage root %q is not absolute", d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("storage root: %w", err)
		}
		r, err := filepath.EvalSymlinks(d)
		if err != nil {
			return nil, fmt.Errorf("storage root: %w", err)
		}
		out = append(out, root{configured: d, resolved: r})
	}
	if len(out) == 0 {
		return nil, errors.New("no storage root configured")
	}
	return out, nil
}

func (rs roots) names() []string {
	n := make([]string, len(rs))
	for i, r := range rs {
		n[i] = r.configured
	}
	return n
}

// find returns the root p lies strictly under and p relative to it.
func (rs roots) find(p string) (root, string, error) {
	if err := safepath.Within(p, rs.names()...); err != nil {
		return root{}, "", err
	}
	for _, r := range rs {
		if rel, err := filepath.Rel(r.configured, p); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			return r, rel, nil
		}
	}
	return root{}, "", denied("path %q is a storage root itself; mount points must lie below %s", p, strings.Join(rs.names(), ", "))
}

// check verifies that an existing host-named path (an overlay layer, a bind
// source) lies under a root and reaches its target without symlinks, so the
// kernel resolves it to exactly the place that was checked.
func (rs roots) check(p string) (string, error) {
	src, err := rs.open(p)
	if err != nil {
		return "", err
	}
	src.Close()
	return src.Name(), nil
}

// open is check that keeps what it checked: an O_PATH handle on the path
// (named as the kernel shows it), to mount from through /proc/self/fd so
// that a component swapped for a symlink after the check changes nothing.
func (rs roots) open(p string) (*os.File, error) {
	r, rel, err := rs.find(p)
	if err != nil {
		return nil, err
	}
	rootFD, err := unix.Open(r.resolved, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open storage root: %w", err)
	}
	defer unix.Close(rootFD)
	fd, err := safepath.OpenBeneath(rootFD, rel, unix.O_PATH)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, invalid("path %q does not exist", p)
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return nil, denied("path %q goes through a symlink", p)
	case err != nil:
		return nil, fmt.Errorf("resolve %s: %w", p, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(r.resolved, rel)), nil
}

// target is a prepared mount point: an O_PATH handle on it, so the mount
// lands on the very inode that was checked even if the path changes later.
type target struct {
	path    string   // mount point as the kernel will show it
	created []string // directories and file this agent created, outermost first
	mp      *safepath.MountPoint
}

// procPath is the handle's magic link, the mount(2) target.
func (t *target) procPath() string { return t.mp.ProcPath() }

// removeCreated deletes what prepare created, innermost first; directories
// that are not empty stay (someone else put something there).
func (t *target) removeCreated() {
	for i := len(t.created) - 1; i >= 0; i-- {
		_ = os.Remove(t.created[i])
	}
}

// prepare creates the mount point p (a directory, or an empty file when
// file is true) under one of the roots, refusing symlinks anywhere below the
// root (safepath.OpenMountPoint).
func (rs roots) prepare(p string, file bool) (*target, error) {
	r, rel, err := rs.find(p)
	if err != nil {
		return nil, err
	}
	mp, err := safepath.OpenMountPoint(r.resolved, rel, file)
	if err != nil {
		return nil, mkdirError(p, err)
	}
	return &target{path: mp.Path, created: mp.Created, mp: mp}, nil
}

func (t *target) close() {
	if t.mp != nil {
		t.mp.Close()
	}
}

func mkdirError(p string, err error) error {
	switch {
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EEXIST):
		return invalid("mount point %q: a path component is not a directory, or a file mount point is not a regular file", p)
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return denied("mount point %q goes through a symlink", p)
	}
	return fmt.Errorf("create mount point %s: %w", p, err)
}

// mount mounts source on the prepared target and returns the cleanup that
// unmounts it and removes what prepare created. On error nothing is left.
func mount(t *target, source, fstype string, o MountOptions) (func(context.Context) error, error) {
	return mountNamed(t, source, source, fstype, o)
}

// mountNamed is mount with the source's name for errors given apart, for
// sources passed as a /proc/self/fd link.
func mountNamed(t *target, source, name, fstype string, o MountOptions) (func(context.Context) error, error) {
	defer t.close()
	flags := o.Flags
	if err := unix.Mount(source, t.procPath(), fstype, flags&^unix.MS_RDONLY|rdonlyUnlessBind(flags), o.DataString()); err != nil {
		t.removeCreated()
		return nil, mountError(name, t.path, fstype, err)
	}
	undo := func() error { return unmount(t) }
	// From here on the path names the new mount (the handle still names the
	// directory underneath it); the path was checked to be symlink-free.
	// A bind mount ignores MS_RDONLY and friends on creation; they take
	// effect through a remount of the new bind.
	if flags&unix.MS_BIND != 0 && flags&(unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC) != 0 {
		restrict := flags & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
		if err := unix.Mount("", t.path, "", unix.MS_REMOUNT|unix.MS_BIND|restrict, ""); err != nil {
			return nil, errors.Join(fmt.Errorf("remount %s read-only/restricted: %w", t.path, err), undo())
		}
	}
	if o.Propagation != 0 {
		if err := unix.Mount("", t.path, "", o.Propagation, ""); err != nil {
			return nil, errors.Join(fmt.Errorf("set propagation of %s: %w", t.path, err), undo())
		}
	}
	return func(context.Context) error { return unmount(t) }, nil
}

func rdonlyUnlessBind(flags uintptr) uintptr {
	if flags&unix.MS_BIND != 0 {
		return 0
	}
	return flags & unix.MS_RDONLY
}

// unmount removes the mount on t.path (lazily if it is still busy: the
// container using it is gone, stray references must not pin the sandbox)
// and then what prepare created.
func unmount(t *target) error {
	err := unix.Unmount(t.path, unix.UMOUNT_NOFOLLOW)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(t.path, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: not mounted any more
		return fmt.Errorf("unmount %s: %w", t.path, err)
	}
	t.removeCreated()
	return nil
}

func mountError(source, mp, fstype string, err error) error {
	msg := fmt.Sprintf("mount %s (%s) on %s: %v", source, fstype, mp, err)
	switch {
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENOTBLK), errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return invalid("%s", msg)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return denied("%s", msg)
	}
	return fmt.Errorf("mount %s (%s) on %s: %w", source, fstype, mp, err)
}
