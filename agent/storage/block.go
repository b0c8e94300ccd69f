package storage

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/safepath"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Driver options of block storages.
const (
	// createFS asks for a fresh file system on the disk (an ext4 emptyDir
	// backed by a block device).
	createFS = "create_filesystem"
	// ephemeralKey asks for the disk to be encrypted with a throw-away key
	// through the confidential data hub's secure mount.
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
	mkfs, err := blockDriverOptions(s)
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
	if mkfs {
		if err := makeExt4(ctx, s.Fstype, dev); err != nil {
			return Mounted{}, err
		}
	}
	return b.common(ctx, s, dev, o)
}

// blockDriverOptions reads the block driver options; it reports whether a
// file system must be created.
func blockDriverOptions(s *agentpb.Storage) (mkfs bool, err error) {
	for _, d := range s.DriverOptions {
		switch d {
		case createFS:
			mkfs = true
		case ephemeralKey:
			// Encrypting needs the secure-mount service of a data hub,
			// which cocoon does not run; refusing beats a plaintext disk.
			return false, invalid("block storage %s: %q is not supported", s.MountPoint, ephemeralKey)
		}
	}
	return mkfs, nil
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

// makeExt4 formats a fresh ext4 emptyDir the way Kata does: no journal, no
// reserved blocks, few inodes — scratch space, not a system disk.
func makeExt4(ctx context.Context, fstype, dev string) error {
	if fstype != "ext4" {
		return invalid("creating a %q file system is not supported (only ext4)", fstype)
	}
	out, err := exec.CommandContext(ctx, "mkfs.ext4", "-F", "-q", "-O", "^has_journal", "-m", "0", "-i", "163840", "-I", "128", dev).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", dev, err, strings.TrimSpace(string(out)))
	}
	return nil
}
