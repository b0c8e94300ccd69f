package storage

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
)

// The explicit writable upper of a host-shared EROFS rootfs. With
// containerd's EROFS snapshotter configured for a writable layer disk,
// runtime-rs attaches the container's rwlayer.img as a block storage of
// fstype ext4 marked X-kata.overlay-upper and X-kata.multi-layer=true, on
// the container's rootfs mount point, with containerd's mount options
// minus "loop" (runtime-rs crates/resource/src/rootfs/erofs_rootfs.rs:
// 575-626). Kata's agent mounts that file system as it is on
// <run dir>/<id>/multi-layer/upper and puts the overlay's upper and work
// directories in it (src/agent/src/storage/multi_layer_erofs.rs:171-184,
// 250-255, 422-427, 535-539; Kata 4.1.0).
//
// Here the disk is only the space: it is formatted afresh as LUKS2 with
// integrity under a throw-away key and a new ext4, as encrypted ephemeral
// disks are (crypt.go). Taken as the host wrote it, its files would lie
// above the verified layers and override any of them (a whiteout or an
// opaque directory hides a lower file, a plain file replaces it), so the
// pinned root hashes would pin nothing; and what the container writes
// would be the host's to read and change. What is lost is nothing a fresh
// container has: containerd makes the layer disk empty for each container.

// isUpper reports whether a group member is the writable upper: Kata takes
// an ext4 member marked multi-layer as the upper even without the upper
// marker (multi_layer_erofs.rs:535-539).
func isUpper(m *Storage, lo *erofs.LayerOptions) bool {
	return lo.Upper || (m.Fstype == "ext4" && lo.MultiLayer && !lo.Lower)
}

// checkUpper checks the upper member i: an ext4 disk, not a partition,
// with no dm-verity options and no mount options but "rw" (the file system
// is the guest's own, made with the options it chooses).
func checkUpper(owner string, i int, m *Storage, lo *erofs.LayerOptions) (*layer, error) {
	name := fmt.Sprintf("container %s upper (%s)", owner, m.Source)
	if m.Fstype != "ext4" {
		return nil, invalid("writable upper disk %s: fstype %q, want ext4 (as Kata's agent)", name, m.Fstype)
	}
	if lo.Verity != nil || lo.GPTPartitioned || lo.Partition > 0 {
		return nil, invalid("writable upper disk %s (storage %d): dm-verity and partition options are for the EROFS lower layers", name, i)
	}
	for _, o := range lo.MountOptions {
		if o != "rw" {
			return nil, invalid("writable upper disk %s: mount option %q; the guest formats and mounts this disk itself and takes only \"rw\"", name, o)
		}
	}
	return &layer{s: m, opts: lo, name: name}, nil
}

// mountUpper finds the upper disk, encrypts and formats it and mounts it
// read-write on dir. It returns the disk's device for the log.
func (g *layerGroup) mountUpper(ctx context.Context, owner string, u layer, dir string) (string, error) {
	b := g.b
	dev, err := b.layerDevice(ctx, u)
	if err != nil {
		return "", err
	}
	d, err := b.openEncrypted(ctx, dev)
	if err != nil {
		return "", fmt.Errorf("writable upper disk %s: encrypting %s: %w", u.name, dev, err)
	}
	g.crypt = d
	if err := makeExt4Integrity(ctx, d.mapper, ext4Opts); err != nil {
		return "", fmt.Errorf("writable upper disk %s: %w", u.name, err)
	}
	o := MountOptions{Flags: unix.MS_NODEV | unix.MS_NOSUID, FSGid: -1, Mode: -1}
	if err := g.mountAt(dir, d.mapper, "ext4", o); err != nil {
		return "", fmt.Errorf("writable upper disk %s: %w", u.name, err)
	}
	b.log.InfoContext(ctx, "storage encrypted", "container", owner, "device", dev, "mapper", d.name, "integrity", integrityAlg)
	return dev, nil
}
