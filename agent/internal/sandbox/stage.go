package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// libcontainer mounts the root and every bind source by path, in its init
// process, long after confine checked those paths; a host controlling a
// shared directory (virtio-fs under shared/) could meanwhile swap a
// component for a symlink and redirect the mount. So every checked path in
// the run dir is opened beneath the run dir without following any symlink,
// bound from that descriptor onto a private staging point below the state
// directory, and libcontainer gets the staging point: a guest path the
// host cannot reach.

// staging is what stageMounts bound for one container. Its mount points
// live until the container is removed (or its creation fails).
type staging struct {
	dir string // <state dir>/binds/<cid>
	// points are the staging mount points made, in order.
	points []string
	// origin maps a staging mount point to the checked source it holds.
	origin map[string]string
}

func (s *Sandbox) stagingOf(cid string) string { return filepath.Join(s.o.StateDir, "binds", cid) }

// stageMounts replaces the checked root and bind sources in the run dir
// with private staging binds of them (see above). Bind sources outside the
// run dir are the guest's own /dev, /proc and /sys, which the host cannot
// change. A source that is no longer the checked path, reached without a
// symlink, is refused with PERMISSION_DENIED. On error nothing staged is
// left.
func (s *Sandbox) stageMounts(spec *specs.Spec, cid string) (_ *staging, err error) {
	// On a shared file system the host could rename a staging point's
	// directory; the guest kernel then detaches what is mounted on it and
	// libcontainer would look the path up in the host's tree.
	if shared := filepath.Join(s.runDir, sharedDir); overlaps(s.o.StateDir, shared) {
		return nil, errs.Newf(errdefs.ErrFailedPrecondition, "state dir %s lies in %s, which the host may change: no private place to stage mount sources", s.o.StateDir, shared)
	}
	st := &staging{dir: s.stagingOf(cid), origin: map[string]string{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, st.release())
		}
	}()
	root, err := unix.Open(s.runDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("run dir: %w", err)
	}
	defer unix.Close(root)
	// libcontainer binds the root recursively onto itself before it
	// pivots: so is its staging bind.
	if spec.Root.Path, err = s.stageOne(root, st, "root path", spec.Root.Path, "rootfs", true); err != nil {
		return nil, err
	}
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		if !isBind(m) || !within(m.Source, s.runDir) {
			continue
		}
		// Recursive exactly when libcontainer's bind of the staging point
		// will be, so the container sees the submounts it saw before.
		rec := slices.Contains(m.Options, "rbind")
		if m.Source, err = s.stageOne(root, st, "mount source", m.Source, strconv.Itoa(i), rec); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// stageOne opens the checked path src beneath the run dir (root) and binds
// it onto a new staging point called name, whose path it returns. what
// names src in errors.
func (s *Sandbox) stageOne(root int, st *staging, what, src, name string, rec bool) (string, error) {
	rel, err := filepath.Rel(s.runDir, src)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", what, src, err)
	}
	fd, err := safepath.OpenBeneath(root, rel, unix.O_PATH)
	switch {
	case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV):
		return "", errs.Newf(errdefs.ErrPermissionDenied, "%s %q changed after it was checked: %v", what, src, err)
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		return "", errs.Newf(errdefs.ErrInvalidArgument, "%s %q disappeared after it was checked: %v", what, src, err)
	case err != nil:
		return "", fmt.Errorf("%s %q: %w", what, src, err)
	}
	defer unix.Close(fd)
	from := fmt.Sprintf("/proc/self/fd/%d", fd)
	// No symlink was followed, but a directory renamed while the walk was
	// in it could have carried the walk elsewhere: the descriptor must name
	// the checked path.
	if real, err := os.Readlink(from); err != nil || real != src {
		return "", errs.Newf(errdefs.ErrPermissionDenied, "%s %q moved after it was checked (now %q)", what, src, real)
	}
	var sb unix.Stat_t
	if err := unix.Fstat(fd, &sb); err != nil {
		return "", fmt.Errorf("%s %q: %w", what, src, err)
	}
	dir := sb.Mode&unix.S_IFMT == unix.S_IFDIR
	if name == "rootfs" && !dir {
		return "", errs.Newf(errdefs.ErrPermissionDenied, "%s %q changed after it was checked: no longer a directory", what, src)
	}
	if err := os.MkdirAll(st.dir, 0o700); err != nil {
		return "", fmt.Errorf("staging dir: %w", err)
	}
	mp, err := safepath.OpenMountPoint(st.dir, name, !dir)
	if err != nil {
		return "", fmt.Errorf("staging point for %q: %w", src, err)
	}
	defer mp.Close()
	st.points = append(st.points, mp.Path)
	flags := uintptr(unix.MS_BIND)
	if rec {
		flags |= unix.MS_REC
	}
	if err := unix.Mount(from, mp.ProcPath(), "", flags, ""); err != nil {
		return "", fmt.Errorf("stage %s %q: %w", what, src, err)
	}
	st.origin[mp.Path] = src
	return mp.Path, nil
}

// originOf returns the checked source a staging point holds, or p itself
// when it is none.
func (st *staging) originOf(p string) string {
	if st != nil {
		if o, ok := st.origin[p]; ok {
			return o
		}
	}
	return p
}

// release unmounts and removes the staging points, innermost last made
// first. Entries are removed one by one, never recursively: a point still
// mounted must not have the source it shows deleted through it.
func (st *staging) release() error {
	if st == nil {
		return nil
	}
	var errList []error
	for _, p := range slices.Backward(st.points) {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errList = append(errList, fmt.Errorf("unmount staging point %s: %w", p, err))
			continue
		}
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			errList = append(errList, fmt.Errorf("staging point: %w", err))
		}
	}
	st.points = nil
	if err := os.Remove(st.dir); err != nil && !os.IsNotExist(err) {
		errList = append(errList, fmt.Errorf("staging dir: %w", err))
	}
	return errors.Join(errList...)
}
