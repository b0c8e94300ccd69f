package system

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// maxEphemeral bounds one UpdateEphemeralMounts request.
const maxEphemeral = 256

// mountFlags are the options that are flags rather than tmpfs data.
func mountFlags() map[string]uintptr {
	return map[string]uintptr{
		"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV,
		"noexec": unix.MS_NOEXEC, "noatime": unix.MS_NOATIME, "nodiratime": unix.MS_NODIRATIME,
		"relatime": unix.MS_RELATIME, "strictatime": unix.MS_STRICTATIME, "sync": unix.MS_SYNCHRONOUS,
		"rw": 0, "suid": 0, "dev": 0, "exec": 0, "async": 0, "atime": 0, "diratime": 0,
	}
}

// tmpfsData are the tmpfs options a remount may change.
func tmpfsData() map[string]bool {
	return map[string]bool{"size": true, "nr_blocks": true, "nr_inodes": true, "mode": true, "uid": true, "gid": true, "huge": true, "mpol": true}
}

// ParseMountOptions splits "-o" style options into flags and tmpfs data,
// refusing anything unknown.
func ParseMountOptions(opts []string) (uintptr, string, error) {
	var flags uintptr
	var data []string
	fl, td := mountFlags(), tmpfsData()
	for _, o := range opts {
		if f, ok := fl[o]; ok {
			flags |= f
			continue
		}
		k, v, hasV := strings.Cut(o, "=")
		if !td[k] || !hasV || v == "" || strings.ContainsAny(v, ",\x00") {
			return 0, "", invalid("unsupported ephemeral mount option %q", o)
		}
		data = append(data, o)
	}
	return flags, strings.Join(data, ","), nil
}

// UpdateEphemeralMounts remounts existing ephemeral (tmpfs) storages with
// new options, e.g. a grown size limit for an emptyDir with medium Memory.
// Only tmpfs mount points under the Kata run directory are touched; every
// storage is validated before any remount.
func (g *Guest) UpdateEphemeralMounts(_ context.Context, storages []*storage.Storage) error {
	if len(storages) > maxEphemeral {
		return invalid("%d storages, more than %d", len(storages), maxEphemeral)
	}
	type remount struct {
		path  string
		flags uintptr
		data  string
	}
	var todo []remount
	for _, s := range storages {
		if s == nil {
			return invalid("storage is null")
		}
		if s.Driver != "ephemeral" {
			return invalid("storage %s: driver %q is not ephemeral", s.MountPoint, s.Driver)
		}
		if err := safepath.Within(s.MountPoint, g.o.KataRunDir); err != nil {
			return err
		}
		m, err := g.mountAt(s.MountPoint)
		if err != nil {
			return err
		}
		if m.FSType != "tmpfs" {
			return errs.Newf(errdefs.ErrFailedPrecondition, "%s is %s, not tmpfs", s.MountPoint, m.FSType)
		}
		flags, data, err := ParseMountOptions(s.Options)
		if err != nil {
			return fmt.Errorf("storage %s: %w", s.MountPoint, err)
		}
		todo = append(todo, remount{s.MountPoint, flags, data})
	}
	for _, r := range todo {
		if err := unix.Mount("none", r.path, "tmpfs", unix.MS_REMOUNT|r.flags, r.data); err != nil {
			return fmt.Errorf("remount %s with %q: %w", r.path, r.data, err)
		}
	}
	return nil
}
