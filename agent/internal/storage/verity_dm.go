package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dm-verity devices are made with the device-mapper ioctls directly, not
// with veritysetup or dmsetup: the table is built from the parameters the
// agent parsed and checked (erofs.ParseOptions), so nothing the host wrote
// on the disk — a verity superblock's salt, sizes or algorithm — decides
// what is verified, and the agent needs no tool in the guest image and no
// udev to finish the device. The commands and the struct layout are
// include/uapi/linux/dm-ioctl.h's.
const (
	dmDevCreate   = 0xc138fd03 // _IOWR(0xfd, DM_DEV_CREATE_CMD, struct dm_ioctl)
	dmDevRemove   = 0xc138fd04
	dmDevSuspend  = 0xc138fd06
	dmTableLoad   = 0xc138fd09
	dmTableStatus = 0xc138fd0c

	dmReadonlyFlag = 1 << 0
	dmNameLen      = 128
	dmUUIDLen      = 129
	dmTargetSpec   = 40 // struct dm_target_spec
	dmStatusBuf    = 4 << 10
)

// dmIoctl is one device-mapper call on the control node: the header names
// the device, data follows it. It returns the reply buffer.
func dmIoctl(control string, cmd uintptr, name string, flags uint32, data []byte, bufSize int) ([]byte, error) {
	if len(name) >= dmNameLen {
		return nil, fmt.Errorf("device-mapper name %q is too long", name)
	}
	f, err := os.OpenFile(control, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := max(dmIoctlSize+len(data), bufSize)
	buf := make([]byte, size)
	le := binary.LittleEndian // host order; the guest is little-endian
	le.PutUint32(buf[0:], 4)  // interface version 4.0.0
	le.PutUint32(buf[12:], uint32(size))
	le.PutUint32(buf[16:], dmIoctlSize)
	if len(data) > 0 {
		le.PutUint32(buf[20:], 1) // target_count: every table here has one target
	}
	le.PutUint32(buf[28:], flags)
	copy(buf[48:48+dmNameLen], name)
	copy(buf[dmIoctlSize:], data)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), cmd, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		return nil, errno
	}
	return buf, nil
}

// dmTarget is one table line as struct dm_target_spec followed by its
// NUL-terminated parameters, padded to 8 bytes.
func dmTarget(sectors uint64, typ, params string) []byte {
	n := (dmTargetSpec + len(params) + 1 + 7) &^ 7
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b[8:], sectors) // sector_start 0, length
	copy(b[24:40], typ)
	copy(b[dmTargetSpec:], params)
	return b
}

// dmCreateReadOnly creates the device name with one target and activates
// it read-only; it returns the device number. On error nothing is left.
func dmCreateReadOnly(control, name string, sectors uint64, typ, params string) (uint64, error) {
	reply, err := dmIoctl(control, dmDevCreate, name, 0, nil, 0)
	if err != nil {
		return 0, fmt.Errorf("DM_DEV_CREATE %s: %w", name, err)
	}
	dev := binary.LittleEndian.Uint64(reply[40:])
	if _, err := dmIoctl(control, dmTableLoad, name, dmReadonlyFlag, dmTarget(sectors, typ, params), 0); err != nil {
		err = fmt.Errorf("DM_TABLE_LOAD %s (%s %s): %w", name, typ, params, err)
		return 0, joinRemove(control, name, err)
	}
	// DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes: the loaded table
	// becomes the live one.
	if _, err := dmIoctl(control, dmDevSuspend, name, 0, nil, 0); err != nil {
		return 0, joinRemove(control, name, fmt.Errorf("DM_DEV_SUSPEND (resume) %s: %w", name, err))
	}
	return dev, nil
}

func joinRemove(control, name string, err error) error {
	if rerr := dmRemove(control, name); rerr != nil {
		return fmt.Errorf("%w (and removing the device: %v)", err, rerr)
	}
	return err
}

// dmRemove removes the device name.
func dmRemove(control, name string) error {
	if _, err := dmIoctl(control, dmDevRemove, name, 0, nil, 0); err != nil {
		return fmt.Errorf("DM_DEV_REMOVE %s: %w", name, err)
	}
	return nil
}

// dmStatus returns the status line of the device's single target (for
// dm-verity "V" when every block read so far verified, "C" once one did
// not).
func dmStatus(control, name string) (string, error) {
	reply, err := dmIoctl(control, dmTableStatus, name, 0, nil, dmStatusBuf)
	if err != nil {
		return "", fmt.Errorf("DM_TABLE_STATUS %s: %w", name, err)
	}
	return parseDMStatus(reply)
}

// parseDMStatus reads the first target's status from a DM_TABLE_STATUS
// reply: the header's data area holds struct dm_target_spec and the status
// string after it.
func parseDMStatus(reply []byte) (string, error) {
	if len(reply) < dmIoctlSize {
		return "", fmt.Errorf("device-mapper status: reply of %d bytes", len(reply))
	}
	le := binary.LittleEndian
	start, end, count := le.Uint32(reply[16:]), le.Uint32(reply[12:]), le.Uint32(reply[20:])
	if count == 0 {
		return "", fmt.Errorf("device-mapper status: the device has no table")
	}
	if uint64(start)+dmTargetSpec > uint64(end) || uint64(end) > uint64(len(reply)) {
		return "", fmt.Errorf("device-mapper status: bad data area %d..%d", start, end)
	}
	s := reply[start+dmTargetSpec : end]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return string(s), nil
}
