package system

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetDateTime sets the guest clock (after a VM was restored from a
// snapshot its clock is stale).
func (g *Guest) SetDateTime(_ context.Context, sec, usec int64) error {
	if sec < 0 || usec < 0 || usec >= 1_000_000 {
		return invalid("invalid time: sec %d, usec %d", sec, usec)
	}
	tv := unix.Timeval{Sec: sec, Usec: usec}
	if err := g.o.Syscalls.Settimeofday(&tv); err != nil {
		return fmt.Errorf("settimeofday: %w", err)
	}
	return nil
}

// MaxEntropy bounds one ReseedRandomDev request.
const MaxEntropy = 64 << 10

// Reseed mixes host-provided entropy into the pool and forces the CRNG to
// reseed. The bytes are credited as entropy because that is the point of
// the rpc; in a confidential VM they are not trusted for anything else (the
// TEE's own RNG instruction feeds the pool too).
func (g *Guest) Reseed(_ context.Context, data []byte) error {
	if len(data) == 0 {
		return invalid("missing entropy data")
	}
	if len(data) > MaxEntropy {
		return invalid("%d bytes of entropy, more than %d", len(data), MaxEntropy)
	}
	f, err := os.OpenFile(g.o.Random, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", g.o.Random, err)
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	buf := make([]byte, 8+len(data))
	binary.NativeEndian.PutUint32(buf[0:], uint32(len(data)*8))
	binary.NativeEndian.PutUint32(buf[4:], uint32(len(data)))
	copy(buf[8:], data)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndAddEntropy, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return fmt.Errorf("add entropy to %s: %w", g.o.Random, e)
	}
	// Kernels before 4.17 have no RNDRESEEDCRNG; the entropy is in anyway.
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndReseedCRNG, 0); e != 0 && !errors.Is(e, unix.EINVAL) {
		return fmt.Errorf("reseed crng: %w", e)
	}
	return nil
}

// ioctl numbers from linux/random.h: _IOW('R', 0x03, int[2]) and _IO('R', 0x07).
const (
	rndAddEntropy = 0x40085203
	rndReseedCRNG = 0x5207
)
