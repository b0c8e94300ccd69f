package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
)

// Kata option keys the file-system drivers understand.
const (
	// overlayRW in Storage.options asks for a writable overlay whose upper
	// and work directories the agent places under <run dir>/<container id>.
	overlayRW = "io.katacontainers.fs-opt.overlay-rw"
	// overlayCreateDir in Storage.driver_options names a directory to create
	// before the overlay is mounted.
	overlayCreateDir = "io.katacontainers.volume.overlayfs.create_directory="
	// premountTag is the virtio-fs tag of the sandbox share, which the guest
	// may have mounted already at boot.
	premountTag = "kataShared"
)

// local is a directory in the guest (a pod emptyDir with medium "" when the
// sandbox has no shared file system). Nothing is mounted; the directory and
// its content outlive the containers that use it, as an emptyDir outlives a
// container restart, and go with the sandbox's run directory.
func (b *builtin) local(ctx context.Context, r Request) (Mounted, error) {
	s := r.Storage
	o, err := mountOptions(s)
	if err != nil {
		return Mounted{}, err
	}
	t, err := b.roots.prepare(s.MountPoint, false)
	if err != nil {
		return Mounted{}, err
	}
	defer t.close()
	// Changed through the handle prepare checked, never by path again.
	if err := chgrpSetgidFD(t.mp.Fd(), t.path, o.FSGid); err != nil {
		return Mounted{}, err
	}
	if o.Mode >= 0 {
		mode := uint32(o.Mode) & 0o7777
		if o.FSGid >= 0 {
			mode |= setgid
		}
		if err := unix.Fchmod(t.mp.Fd(), mode); err != nil {
			return Mounted{}, fmt.Errorf("local storage %s: %w", s.MountPoint, err)
		}
	}
	return Mounted{Path: s.MountPoint, Cleanup: func(context.Context) error { return nil }}, nil
}

// ephemeral is a memory-backed volume: tmpfs (emptyDir medium Memory, and
// the sandbox's /dev/shm, which the runtime sends with source "shm" and a
// size option) or hugetlbfs (hugepages emptyDir, which first needs the pages
// reserved). Any other file-system type is refused: ephemeral storage must
// never mount a device.
func (b *builtin) ephemeral(ctx context.Context, r Request) (Mounted, error) {
	s := r.Storage
	o, err := mountOptions(s)
	if err != nil {
		return Mounted{}, err
	}
	source := s.Source
	if source == "" {
		source = "tmpfs"
	}
	switch s.Fstype {
	case "", "tmpfs":
		s = cloneWithFstype(s, "tmpfs")
	case "hugetlbfs":
		if err := b.reserveHugepages(o); err != nil {
			return Mounted{}, err
		}
	default:
		return Mounted{}, invalid("ephemeral storage with fstype %q: only tmpfs and hugetlbfs", s.Fstype)
	}
	m, err := b.common(ctx, s, source, o)
	if err != nil {
		return Mounted{}, err
	}
	if err := chgrpSetgid(m.Path, o.FSGid); err != nil {
		return Mounted{}, joinCleanup(ctx, err, m.Cleanup)
	}
	return m, nil
}

// overlay mounts an overlay file system whose layers are named in the
// options. Every layer directory must lie under the allowed roots and be
// reached without symlinks; upper and work directories are created when
// missing and removed again with the mount if this driver created them.
func (b *builtin) overlay(ctx context.Context, r Request) (Mounted, error) {
	s := r.Storage
	o, err := mountOptions(s)
	if err != nil {
		return Mounted{}, err
	}
	// Upper and work directories this call created go with the mount: their
	// content recursively, the parents created on the way only when empty
	// (something else may have been mounted or put there since).
	var made, madeParents []string
	undo := func() {
		for i := len(made) - 1; i >= 0; i-- {
			_ = os.RemoveAll(made[i])
		}
		for i := len(madeParents) - 1; i >= 0; i-- {
			_ = os.Remove(madeParents[i])
		}
	}
	if slices.Contains(o.Kata, overlayRW) {
		if err := safepath.ValidateID("container", r.Owner); err != nil {
			return Mounted{}, fmt.Errorf("writable overlay needs its container: %w", err)
		}
		base := filepath.Join(b.opts.KataRunDir, r.Owner)
		o.Data = withoutKeys(o.Data, "upperdir", "workdir")
		o.Data = append(o.Data, "upperdir="+filepath.Join(base, "upper"), "workdir="+filepath.Join(base, "work"))
	}
	for _, d := range s.DriverOptions {
		if dir, ok := strings.CutPrefix(d, overlayCreateDir); ok {
			t, err := b.roots.prepare(dir, false)
			if err != nil {
				undo()
				return Mounted{}, fmt.Errorf("overlay create_directory: %w", err)
			}
			t.close()
		}
	}
	lowers := 0
	for _, kv := range o.Data {
		key, val, _ := strings.Cut(kv, "=")
		switch key {
		case "lowerdir":
			for _, l := range strings.Split(val, ":") {
				if _, err := b.roots.check(l); err != nil {
					undo()
					return Mounted{}, fmt.Errorf("overlay lowerdir: %w", err)
				}
				lowers++
			}
		case "upperdir", "workdir":
			t, err := b.roots.prepare(val, false)
			if err != nil {
				undo()
				return Mounted{}, fmt.Errorf("overlay %s: %w", key, err)
			}
			t.close()
			if n := len(t.created); n > 0 && t.created[n-1] == t.path {
				made = append(made, t.path)
				madeParents = append(madeParents, t.created[:n-1]...)
			}
		}
	}
	if lowers == 0 {
		undo()
		return Mounted{}, invalid("overlay storage %s has no lowerdir option", s.MountPoint)
	}
	m, err := b.common(ctx, cloneWithFstype(s, "overlay"), "overlay", o)
	if err != nil {
		undo()
		return Mounted{}, err
	}
	inner := m.Cleanup
	m.Cleanup = func(ctx context.Context) error {
		err := inner(ctx)
		if err == nil {
			undo()
		}
		return err
	}
	return m, nil
}

// virtiofs mounts a virtio-fs share by tag. The sandbox share may already be
// mounted by the guest's init; then there is nothing to do.
func (b *builtin) virtiofs(ctx context.Context, r Request) (Mounted, error) {
	s := r.Storage
	o, err := mountOptions(s)
	if err != nil {
		return Mounted{}, err
	}
	if s.Source == "" {
		return Mounted{}, invalid("virtio-fs storage %s has no source (tag)", s.MountPoint)
	}
	if s.Source == premountTag && safepath.IsMountPoint(s.MountPoint) {
		return Mounted{Path: s.MountPoint, Cleanup: func(context.Context) error { return nil }}, nil
	}
	return b.common(ctx, cloneWithFstype(s, "virtiofs"), s.Source, o)
}

// bind bind-mounts a guest path (a file or a directory) under the run
// directory onto the mount point. The Kata agent additionally copies
// watchable-bind sources that live on a shared file system without inotify
// and re-copies them when they change; cocoon binds (see docs/storage.md).
func (b *builtin) bind(ctx context.Context, r Request) (Mounted, error) {
	s := r.Storage
	o, err := mountOptions(s)
	if err != nil {
		return Mounted{}, err
	}
	// The source is mounted from the handle it was checked through: a
	// component swapped for a symlink afterwards cannot redirect the bind.
	src, err := b.roots.open(s.Source)
	if err != nil {
		return Mounted{}, fmt.Errorf("bind source: %w", err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return Mounted{}, fmt.Errorf("bind source: %w", err)
	}
	isFile := !st.IsDir()
	if isFile && !st.Mode().IsRegular() {
		return Mounted{}, invalid("bind source %q is neither a directory nor a regular file", s.Source)
	}
	t, err := b.roots.prepare(s.MountPoint, isFile)
	if err != nil {
		return Mounted{}, err
	}
	path := t.path
	o.Flags |= unix.MS_BIND | unix.MS_REC
	cleanup, err := mountNamed(t, "/proc/self/fd/"+strconv.Itoa(int(src.Fd())), src.Name(), "", o)
	if err != nil {
		return Mounted{}, err
	}
	if err := applyFSGroup(path, s.FSGroup, o.ReadOnly()); err != nil {
		return Mounted{}, joinCleanup(ctx, err, cleanup)
	}
	return Mounted{Path: s.MountPoint, Cleanup: cleanup}, nil
}

// withoutKeys drops key=value entries whose key is one of keys.
func withoutKeys(data []string, keys ...string) []string {
	out := data[:0:0]
	for _, kv := range data {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(keys, k) {
			out = append(out, kv)
		}
	}
	return out
}
