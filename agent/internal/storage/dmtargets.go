package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The device-mapper ioctl ABI (include/uapi/linux/dm-ioctl.h): a fixed
// 312-byte struct dm_ioctl, then a data area the kernel fills.
const (
	dmIoctlSize     = 312
	dmListVersions  = 0xc138fd0d // _IOWR(0xfd, DM_LIST_VERSIONS_CMD=13, struct dm_ioctl)
	dmBufferFull    = 1 << 8     // DM_BUFFER_FULL_FLAG
	dmVersionsBuf   = 16 << 10   // a kernel lists a few dozen targets at most
	dmTargetHdrSize = 16         // struct dm_target_versions: next, version[3]
	maxDMTargets    = 1024
)

// dmTargets asks the kernel which device-mapper targets it has, through
// the control node: the agent needs no dmsetup, and the answer comes from
// the kernel itself rather than from module files that may be stale.
func dmTargets(control string) (map[string]bool, error) {
	buf, err := dmIoctl(control, dmListVersions, "", 0, nil, dmVersionsBuf)
	if err != nil {
		return nil, fmt.Errorf("DM_LIST_VERSIONS: %w", err)
	}
	le := binary.LittleEndian // host order; the guest is little-endian
	if le.Uint32(buf[28:])&dmBufferFull != 0 {
		return nil, fmt.Errorf("DM_LIST_VERSIONS: the target list does not fit in %d bytes", len(buf))
	}
	start, end := le.Uint32(buf[16:]), le.Uint32(buf[12:])
	if start > end || end > uint32(len(buf)) {
		return nil, fmt.Errorf("DM_LIST_VERSIONS: bad data area %d..%d", start, end)
	}
	return parseDMTargets(buf[start:end])
}

// parseDMTargets reads the chain of struct dm_target_versions the kernel
// writes: each entry holds the offset of the next (0 ends the list), the
// target's version and its NUL-terminated name.
func parseDMTargets(data []byte) (map[string]bool, error) {
	out := map[string]bool{}
	if len(data) == 0 {
		return out, nil
	}
	off := 0
	for range maxDMTargets {
		if len(data)-off < dmTargetHdrSize+1 {
			return nil, fmt.Errorf("device-mapper target list: entry at %d is truncated", off)
		}
		next := binary.LittleEndian.Uint32(data[off:])
		name := data[off+dmTargetHdrSize:]
		n := bytes.IndexByte(name, 0)
		if n < 0 {
			return nil, fmt.Errorf("device-mapper target list: name at %d is not terminated", off)
		}
		out[string(name[:n])] = true
		if next == 0 {
			return out, nil
		}
		if uint64(next) < dmTargetHdrSize || uint64(next) > uint64(len(data)-off) {
			return nil, fmt.Errorf("device-mapper target list: bad next offset %d at %d", next, off)
		}
		off += int(next)
	}
	return nil, fmt.Errorf("device-mapper target list: more than %d targets", maxDMTargets)
}
