package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// verityDevice is an open dm-verity mapping of one layer.
type verityDevice struct {
	control string
	name    string // device-mapper name
	path    string // its block device node
	layer   string // for messages: which layer of which container
	hash    string
	dev     uint64 // the mapping's device number
	part    string // the partition or disk under it
	under   uint64 // and its device number

	// Set by the group's verityWatch as the kernel reports them.
	corruptions atomic.Uint64 // blocks that failed verification
	removed     atomic.Bool   // the device under the mapping went away
}

// verityPreflight refuses, before any device is touched, a guest whose
// kernel cannot verify: a layer must never be mounted unverified.
func (b *builtin) verityPreflight() error {
	targets, err := dmTargets(b.cryptControl())
	if err != nil {
		return errs.Newf(errdefs.ErrFailedPrecondition,
			"host-shared EROFS layers need the kernel's device-mapper to verify them: %v", err)

	}
	if !targets["verity"] {
		return errdefs.ErrFailedPrecondition.WithMessage(
			"host-shared EROFS layers need the device-mapper \"verity\" target (dm-verity) in the guest kernel; refusing to mount them unverified")
	}
	return nil
}

// verityTable is the dm-verity target's parameters for a layer whose data
// and hash tree share the device dev (Linux
// Documentation/admin-guide/device-mapper/verity.rst): version, data and
// hash device, block sizes, data blocks, first hash block, algorithm, root
// hash, salt. No optional arguments: a block that fails verification is an
// I/O error, the default, never a restart or a silently logged mismatch.
func verityTable(dev uint64, p *erofs.VerityParams) (sectors uint64, params string) {
	d := strconv.FormatUint(uint64(unix.Major(dev)), 10) + ":" + strconv.FormatUint(uint64(unix.Minor(dev)), 10)
	salt := "-"
	if len(p.Salt) > 0 {
		salt = hex.EncodeToString(p.Salt)
	}
	params = fmt.Sprintf("%d %s %s %d %d %d %d %s %s %s", p.HashType, d, d, p.BlockSize, p.HashSize,
		p.DataBlocks, p.HashStartBlock(), p.Algorithm, p.RootHash, salt)
	return p.DataBlocks * p.BlockSize / 512, params
}

// openVerity maps the partition part through dm-verity with the layer's
// parameters and returns the verified device.
func (b *builtin) openVerity(part, layer string, p *erofs.VerityParams) (*verityDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(part, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", part, err)
	}
	var size uint64
	if err := blockSize(part, &size); err != nil {
		return nil, err
	}
	sectors, params := verityTable(st.Rdev, p)
	// The tree lies after the data; a partition too small for the data
	// the host claims would only fail later, on a read.
	if p.HashOffset >= size {
		return nil, invalid("erofs layer %s: hash offset %d is past the end of %s (%d bytes)", layer, p.HashOffset, part, size)
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	v := &verityDevice{control: b.cryptControl(), layer: layer, hash: p.RootHash, part: part, under: st.Rdev,
		name: "cocoon-verity-" + hex.EncodeToString(suffix) + "-" + p.RootHash[:16]}
	dev, err := dmCreateReadOnly(v.control, v.name, sectors, "verity", params)
	if err != nil {
		return nil, fmt.Errorf("erofs layer %s: dm-verity: %w", layer, err)
	}
	v.dev = dev
	// devtmpfs names every mapped device dm-<minor>; the node must be
	// the device just made.
	v.path = filepath.Join(b.opts.DevRoot, "dm-"+strconv.FormatUint(uint64(unix.Minor(dev)), 10))
	if err := unix.Stat(v.path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != dev {
		return nil, joinRemove(v.control, v.name, fmt.Errorf("erofs layer %s: %s is not the dm-verity device %d:%d (%v)",
			layer, v.path, unix.Major(dev), unix.Minor(dev), err))
	}
	return v, nil
}

// blockSize reads a block device's size in bytes.
func blockSize(dev string, size *uint64) error {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	n, err := unix.IoctlGetUint64(fd, unix.BLKGETSIZE64)
	if err != nil {
		return fmt.Errorf("size of %s: %w", dev, err)
	}
	*size = n
	return nil
}

// close reports whether dm-verity refused a block of this layer while it
// was in use (the reads failed with EIO; the log says which layer), then
// removes the mapping. The group's verityWatch normally reported it when
// it happened; the status read here catches what it could not see (no
// uevent socket, events lost), since the kernel keeps the flag for the
// mapping's life (dm-verity-target.c verity_status: 'C' once a block
// failed, else 'V').
func (v *verityDevice) close(ctx context.Context, b *builtin) error {
	if st, err := dmStatus(v.control, v.name); err != nil {
		b.log.WarnContext(ctx, "dm-verity status unavailable", "layer", v.layer, "device", v.name, "error", err.Error())
	} else if st == "C" && v.corruptions.Load() == 0 {
		b.opts.Incidents.corruptions.Add(1)
		b.log.ErrorContext(ctx, "dm-verity detected corruption", "layer", v.layer, "root_hash", v.hash, "device", v.name, "dev", v.path,
			"error", fmt.Sprintf("erofs layer %s failed verification against root hash %s while mounted: reads of it failed with EIO", v.layer, v.hash))
	}
	return dmRemove(v.control, v.name)
}
