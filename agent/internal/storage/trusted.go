package storage

import (
	"context"
	"fmt"
	"path/filepath"
)

// TrustedStoreDevice is the container device path by which a pod hands
// the agent a raw block volume for its images (Kata
// docs/how-to/how-to-pull-images-in-guest-with-kata.md, "Run pod in kata
// containers with pulling large image in guest"; src/agent/src/rpc.rs
// TRUSTED_IMAGE_STORAGE_DEVICE and cdh_handler_trusted_storage).
const TrustedStoreDevice = "/dev/trusted_store"

// trustedStoreOpts shape the image file system: mke2fs's default inode
// density, since image layers are many small files (Kata passes only
// "-E lazy_journal_init"); no journal, because the disk dies with its key.
var trustedStoreOpts = []string{"-O", "^has_journal", "-m", "0"}

// MountTrustedStore encrypts the raw block device dev (the guest node of the
// pod's trusted_store volume) with a throw-away key, exactly as an encrypted
// emptyDir, makes a file system for image layers on it and mounts it on
// dir, an agent-chosen directory. Cleanup unmounts it and closes the
// mapping. Whatever dir held before is hidden, so callers mount it before
// anything is stored there.
func (m *Manager) MountTrustedStore(ctx context.Context, dev, dir string) (Mounted, error) {
	b := m.builtin
	if b == nil {
		return Mounted{}, fmt.Errorf("trusted store: the manager has no builtin drivers")
	}
	if err := b.checkBlockDevice(dev); err != nil {
		return Mounted{}, fmt.Errorf("trusted store: %w", err)
	}
	if err := b.cryptPreflight(); err != nil {
		return Mounted{}, err
	}
	rs, err := newRoots([]string{filepath.Dir(dir)})
	if err != nil {
		return Mounted{}, fmt.Errorf("trusted store: %w", err)
	}
	d, err := b.openEncrypted(ctx, dev)
	if err != nil {
		return Mounted{}, fmt.Errorf("trusted store: encrypting %s: %w", dev, err)
	}
	if err := makeExt4Integrity(ctx, d.mapper, trustedStoreOpts); err != nil {
		return Mounted{}, joinCleanup(ctx, err, d.close)
	}
	t, err := rs.prepare(dir, false)
	if err != nil {
		return Mounted{}, joinCleanup(ctx, err, d.close)
	}
	unmount, err := mount(t, d.mapper, "ext4", MountOptions{FSGid: -1, Mode: -1})
	if err != nil {
		return Mounted{}, joinCleanup(ctx, err, d.close)
	}
	b.log.InfoContext(ctx, "trusted store mounted", "device", dev, "mapper", d.name, "dir", dir, "integrity", integrityAlg)
	return Mounted{Path: dir, Cleanup: func(ctx context.Context) error {
		if err := unmount(ctx); err != nil {
			return err
		}
		return d.close(ctx)
	}}, nil
}
