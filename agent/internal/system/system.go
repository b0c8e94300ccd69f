// Package system owns the guest-wide rpcs that are not about one container:
// guest details, CPU and memory hot-plug, the clock, the entropy pool, swap,
// volume statistics and resizing, ephemeral remounts, stale virtio-fs
// shares and the memory agent. Every sysfs, procfs and device path is rooted
// in Options so that tests run against a fake tree, and the calls that
// change the machine (settimeofday, swapon, umount) can be replaced in tests.
package system

import (
	"path/filepath"
	"time"
	"unsafe"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Syscalls are the machine-changing calls. A nil field is the real call.
type Syscalls struct {
	Settimeofday func(tv *unix.Timeval) error
	Swapon       func(path string) error
	Unmount      func(path string, flags int) error
}

// Options configure a Guest. Zero values are the real system's paths.
type Options struct {
	Sysfs  string // /sys
	Proc   string // /proc
	Dev    string // /dev
	Random string // /dev/random
	// KataRunDir bounds ephemeral mount points; SharedDir is where
	// virtio-fs shares are mounted (<KataRunDir>/shared/containers).
	KataRunDir string
	SharedDir  string
	// HotplugTimeout bounds waiting for a hot-plugged swap disk.
	HotplugTimeout time.Duration
	// OnlineRetries and OnlineWait pace OnlineCPUMem (Kata: 100 × 50 ms).
	OnlineRetries int
	OnlineWait    time.Duration
	// Confidential refuses swap: swapped pages would be readable by the host.
	Confidential bool
	Version      string
	// StorageHandlers lists the storage drivers (from the storage manager).
	StorageHandlers func() []string
	// DeviceHandlers lists the device drivers; Kata reports none.
	DeviceHandlers func() []string
	Syscalls       Syscalls
}

// Guest implements the guest-wide operations.
type Guest struct {
	o Options
}

// New fills in defaults and returns a Guest.
func New(o Options) *Guest {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Sysfs, "/sys")
	def(&o.Proc, "/proc")
	def(&o.Dev, "/dev")
	def(&o.Random, filepath.Join(o.Dev, "random"))
	def(&o.KataRunDir, config.DefaultKataRunDir)
	def(&o.SharedDir, filepath.Join(o.KataRunDir, "shared", "containers"))
	if o.HotplugTimeout <= 0 {
		o.HotplugTimeout = config.DefaultHotplugTimeout
	}
	if o.OnlineRetries <= 0 {
		o.OnlineRetries = 100
	}
	if o.OnlineWait <= 0 {
		o.OnlineWait = 50 * time.Millisecond
	}
	if o.Syscalls.Settimeofday == nil {
		o.Syscalls.Settimeofday = unix.Settimeofday
	}
	if o.Syscalls.Swapon == nil {
		o.Syscalls.Swapon = swapon
	}
	if o.Syscalls.Unmount == nil {
		o.Syscalls.Unmount = unix.Unmount
	}
	return &Guest{o: o}
}

func invalid(format string, a ...any) error {
	return errs.Newf(errdefs.ErrInvalidArgument, format, a...)
}

func swapon(path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_SWAPON, uintptr(unsafe.Pointer(p)), 0, 0); e != 0 {
		return e
	}
	return nil
}
