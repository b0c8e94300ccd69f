// Package initsys does what an init system would when the agent runs as
// PID 1 in the guest: mount the kernel file systems, give the agent's state
// a bounded tmpfs of its own, mount cgroups and bring up the loopback
// interface. It changes nothing when the agent is not PID 1.
package initsys

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
)

// IsInit reports whether this process is the guest's init.
func IsInit() bool { return os.Getpid() == 1 }

type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// baseMounts is the minimal tree the agent and its containers need.
var baseMounts = []mountSpec{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
}

// Setup mounts the base file systems and cgroups and brings up lo. unified
// selects cgroup v2 only (cgroup_no_v1=all); otherwise the v1 controllers the
// kernel offers are mounted too.
func Setup(unified bool) error {
	// The kernel starts init with HOME and TERM only; tools the agent runs
	// (modprobe, iptables, mkfs) are found through PATH.
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	for _, m := range baseMounts {
		if err := mountOnce(m); err != nil {
			return err
		}
	}
	if err := mountState("/"); err != nil {
		return err
	}
	if err := mountCgroups(unified); err != nil {
		return err
	}
	return LoopbackUp()
}

// KernelCmdline returns the kernel command line. As PID 1 the agent starts
// before anything has mounted /proc, so it mounts proc first; Setup later
// finds it mounted and keeps it.
func KernelCmdline() (string, error) {
	if IsInit() {
		if err := mountOnce(baseMounts[0]); err != nil {
			return "", err
		}
	}
	b, err := os.ReadFile("/proc/cmdline")
	return string(b), err
}

func mountOnce(m mountSpec) error {
	if err := os.MkdirAll(m.target, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", m.target, err)
	}
	if safepath.IsMountPoint(m.target) {
		return nil
	}
	if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
	}
	return nil
}

// LoopbackUp sets IFF_UP on lo.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// PowerOff syncs the file systems and powers the VM off. It returns only on failure.
func PowerOff() error {
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	return errors.Join(errors.New("power off failed"), err)
}
