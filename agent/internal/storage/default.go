package storage

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/cocoon-tee/cocoon/agent/config"
)

// Driver names, as the Kata runtime spells them in Storage.driver.
const (
	DriverLocal         = "local"
	DriverEphemeral     = "ephemeral"
	DriverOverlayFS     = "overlayfs"
	DriverVirtioFS      = "virtio-fs"
	DriverWatchableBind = "watchable-bind"
	DriverBlk           = "blk"
	DriverMmioBlk       = "mmioblk"
	DriverSCSI          = "scsi"
	DriverNVDIMM        = "nvdimm"
)

// Options configure the builtin drivers.
type Options struct {
	// KataRunDir is the directory every mount point, overlay layer and bind
	// source must lie under (Kata: /run/kata-containers).
	KataRunDir string
	// ExtraRoots are further allowed prefixes. Empty by default: the Kata
	// runtime puts everything, the sandbox's shm included, under KataRunDir.
	ExtraRoots []string
	// HotplugTimeout bounds the wait for a hot-plugged disk to show up.
	HotplugTimeout time.Duration
	// SysfsRoot and DevRoot are /sys and /dev; tests point them at fake trees.
	SysfsRoot, DevRoot string
	// Log receives one line per mount.
	Log *slog.Logger
	// Incidents counts verified-layer incidents for GetMetrics; nil: they
	// are logged only.
	Incidents *LayerIncidents
	// CryptName prefixes the device-mapper names of encrypted disks
	// (default "cocoon-crypt"); tests make it unique to themselves.
	CryptName string
	// CryptDir holds the LUKS headers of encrypted disks for the moment
	// between formatting and opening them; it must be in guest memory
	// (default /run/cocoon-crypt on the guest's /run tmpfs).
	CryptDir string
	// DMControl is the device-mapper control node (default
	// DevRoot/mapper/control).
	DMControl string
}

// builtin is the shared state of the builtin drivers.
type builtin struct {
	roots roots
	opts  Options
	dev   devices
	log   *slog.Logger
	// cryptSeq numbers the device-mapper names of encrypted disks.
	cryptSeq atomic.Uint64
}

// NewDefault returns a manager with every builtin driver registered: local,
// ephemeral, overlayfs, virtio-fs, watchable-bind, blk, mmioblk, scsi and
// nvdimm. Image drivers (image_guest_pull, erofs.multi-layer) are
// registered by their owners with Register.
func NewDefault(o Options) (*Manager, error) {
	if o.KataRunDir == "" {
		return nil, fmt.Errorf("storage: KataRunDir is required")
	}
	if o.SysfsRoot == "" {
		o.SysfsRoot = "/sys"
	}
	if o.DevRoot == "" {
		o.DevRoot = "/dev"
	}
	if o.HotplugTimeout <= 0 {
		o.HotplugTimeout = config.DefaultHotplugTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Incidents == nil {
		o.Incidents = &LayerIncidents{}
	}
	rs, err := newRoots(append([]string{o.KataRunDir}, o.ExtraRoots...))
	if err != nil {
		return nil, err
	}
	b := &builtin{roots: rs, opts: o, dev: devices{sys: o.SysfsRoot, dev: o.DevRoot, timeout: o.HotplugTimeout}, log: o.Log}
	m := NewManager()
	m.builtin = b
	for name, fn := range map[string]DriverFunc{
		DriverLocal:           b.local,
		DriverEphemeral:       b.ephemeral,
		DriverOverlayFS:       b.overlay,
		DriverVirtioFS:        b.virtiofs,
		DriverWatchableBind:   b.bind,
		DriverBlk:             b.blkPCI,
		DriverMmioBlk:         b.blkMMIO,
		DriverSCSI:            b.scsi,
		DriverNVDIMM:          b.nvdimm,
		DriverMultiLayerErofs: b.multiLayerErofs,
	} {
		if err := m.Register(name, fn); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Drivers lists the registered driver names (GetGuestDetails reports them
// as storage_handlers).
func (m *Manager) Drivers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.drivers))
	for n := range m.drivers {
		out = append(out, n)
	}
	return out
}

// common mounts source on the storage's mount point with its fstype and
// options and applies fs_group: what most drivers do once they know the
// source.
func (b *builtin) common(ctx context.Context, s *Storage, source string, o MountOptions) (Mounted, error) {
	t, err := b.roots.prepare(s.MountPoint, false)
	if err != nil {
		return Mounted{}, err
	}
	path := t.path
	cleanup, err := mount(t, source, s.Fstype, o)
	if err != nil {
		return Mounted{}, err
	}
	if err := applyFSGroup(path, s.FSGroup, o.ReadOnly()); err != nil {
		return Mounted{}, joinCleanup(ctx, err, cleanup)
	}
	b.log.InfoContext(ctx, "storage mounted", "driver", s.Driver, "source", source, "fstype", s.Fstype, "mount_point", s.MountPoint, "options", o.DataString())
	return Mounted{Path: s.MountPoint, Cleanup: cleanup}, nil
}

// joinCleanup undoes a half-made mount and reports both errors.
func joinCleanup(ctx context.Context, err error, cleanup func(context.Context) error) error {
	if cerr := cleanup(ctx); cerr != nil {
		return fmt.Errorf("%w (and undoing the mount: %v)", err, cerr)
	}
	return err
}

// mountOptions checks the fields every mounting driver needs and parses the
// storage's options.
func mountOptions(s *Storage) (MountOptions, error) {
	if s.MountPoint == "" {
		return MountOptions{}, invalid("storage driver %s: mount_point is empty", s.Driver)
	}
	if !filepath.IsAbs(s.MountPoint) {
		return MountOptions{}, invalid("storage driver %s: mount_point %q is not absolute", s.Driver, s.MountPoint)
	}
	return ParseOptions(s.Options)
}
