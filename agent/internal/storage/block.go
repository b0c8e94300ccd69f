package storage

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
)

// Driver options of block storages.
const (
	// createFS asks for a fresh file system on the disk (an ext4 emptyDir
	// backed by a block device; kata-types mount.rs
	// KATA_BLOCK_VOLUME_CREATE_FS).
	createFS = "create_filesystem"
	// ephemeralKey asks for the disk to be encrypted with a throw-away key
	// (Kata block_handler.rs EPHEMERAL_ENCRYPTION_DRIVER_OPTION).
	ephemeralKey = "encryption_key=ephemeral"
)

// blkPCI is a virtio-blk disk named by its PCI path, or directly by /dev path.
func (b *builtin) blkPCI(ctx context.Context, r Request) (Mounted, error) {
	return b.block(ctx, r, func(ctx context.Context, src string) (string, error) {
		if strings.HasPrefix(src, "/dev/") {
			return src, nil
		}
		return b.dev.pci(ctx, src)
	})
}

// blkMMIO is a virtio-mmio disk, named by its /dev path.
func (b *builtin) blkMMIO(ctx context.Context, r Request) (Mounted, error) {
	return b.block(ctx, r, func(ctx context.Context, src string) (string, error) {
		return b.dev.named(ctx, src, "")
	})
}

// scsi is a virtio-scsi disk named by "id:lun".
func (b *builtin) scsi(ctx context.Context, r Request) (Mounted, error) {
	return b.block(ctx, r, b.dev.scsi)
}

// nvdimm is a persistent-memory disk (/dev/pmemN) the firmware describes
// through ACPI.
func (b *builtin) nvdimm(ctx context.Context, r Request) (Mounted, error) {
	return b.block(ctx, r, func(ctx context.Context, src string) (string, error) {
		return b.dev.named(ctx, src, "/devices/LNXSYSTM")
	})
}

// block finds the disk, checks it really is a block device, makes a file
// system when asked, and mounts it.
func (b *builtin) block(ctx context.Context, r Request, find func(context.Context, string) (string, error)) (Mounted, error) {
	s := r.Storage
	o, err := mountOptions(s)
	if err != nil {
		return Mounted{}, err
	}
	if s.Source == "" {
		return Mounted{}, invalid("%s storage %s has no source", s.Driver, s.MountPoint)
	}
	if s.Fstype == "" {
		return Mounted{}, invalid("%s storage %s has no fstype", s.Driver, s.MountPoint)
	}
	mkfs, encrypt, err := blockDriverOptions(s)
	if err != nil {
		return Mounted{}, err
	}
	dev, err := find(ctx, s.Source)
	if err != nil {
		return Mounted{}, err
	}
	if err := b.checkBlockDevice(dev); err != nil {
		return Mounted{}, err
	}
	if encrypt {
		return b.encryptedBlock(ctx, s, dev, o)
	}
	if mkfs {
		if err := makeExt4(ctx, s.Fstype, dev); err != nil {
			return Mounted{}, err
		}
	}
	return b.common(ctx, s, dev, o)
}

// blockDriverOptions reads the block driver options: whether a file system
// must be created, and whether the disk is encrypted with an ephemeral key.
// Other driver options are Kata's to define and ignored, as Kata's agent
// does, except encryption_key: an unknown key must not mean no encryption.
func blockDriverOptions(s *Storage) (mkfs, encrypt bool, err error) {
	for _, d := range s.DriverOptions {
		if d == createFS {
			mkfs = true
			continue
		}
		e, err := cryptKey(d)
		if err != nil {
			return false, false, err
		}
		encrypt = encrypt || e
	}
	if encrypt && !mkfs {
		// Kata's agent refuses this too (block_handler.rs
		// block_storage_driver_options): encrypting means formatting,
		// which would destroy a disk that holds data.
		return false, false, invalid("block storage %s: %q needs %q", s.MountPoint, ephemeralKey, createFS)
	}
	if encrypt && s.Fstype != "ext4" {
		return false, false, invalid("block storage %s: an encrypted disk gets ext4, not %q", s.MountPoint, s.Fstype)
	}
	return mkfs, encrypt, nil
}

// checkBlockDevice refuses anything but a block device node under /dev.
func (b *builtin) checkBlockDevice(dev string) error {
	if err := safepath.Within(dev, b.opts.DevRoot); err != nil {
		return fmt.Errorf("block device: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return invalid("block device %s: %v", dev, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return invalid("%s is not a block device", dev)
	}
	return nil
}
