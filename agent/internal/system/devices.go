package system

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Device types of CreateContainerRequest.devices, as the Kata runtime names
// them (Kata 4.1 src/libs/kata-types/src/device.rs, DRIVER_*_TYPE).
const (
	DeviceBlk        = "blk"          // virtio-blk on PCI; id is its PCI path
	DeviceMmioBlk    = "mmioblk"      // virtio-blk on MMIO; vm_path is /dev/<name>
	DeviceSCSI       = "scsi"         // virtio-scsi disk; id is "<scsi id>:<lun>"
	DeviceNvdimm     = "nvdimm"       // vm_path is /dev/pmem<n>
	DeviceVfioPCI    = "vfio-pci"     // options "<host BDF>=<guest PCI path>"; used as VFIO in the container
	DeviceVfioPCIGK  = "vfio-pci-gk"  // the same devices, for the guest kernel's own drivers
	DeviceVfioAP     = "vfio-ap"      // s390x only
	DeviceVfioAPCold = "vfio-ap-cold" // s390x only
	DeviceBlkCCW     = "blk-ccw"      // s390x only
)

// MaxDevices bounds CreateContainerRequest.devices, and MaxDeviceOptions the
// options of one device (one per PCI function of a VFIO group).
const (
	MaxDevices       = 1024
	MaxDeviceOptions = 256
)

// pollInterval paces the sysfs polls while waiting for a hot-plugged device.
const pollInterval = 10 * time.Millisecond

// Device is one device of a CreateContainer request as the host names it:
// its Type says how ID or VMPath find it in the guest, ContainerPath is the
// spec's linux.devices entry it stands for.
type Device struct {
	ID            string
	Type          string
	VMPath        string
	ContainerPath string
	Options       []string
}

// DeviceNode is one device of a CreateContainer request as it is in this
// guest: the node the spec's linux.devices entry at ContainerPath must name.
type DeviceNode struct {
	ContainerPath string
	Type          string // "b" or "c"
	Major, Minor  int64
	// Path, when set, replaces ContainerPath in the spec (VFIO groups are
	// numbered by the guest's IOMMU, not the host's).
	Path string
}

// ResolveDevices finds each device of a CreateContainer request in the
// guest, waiting up to the hot-plug timeout for it as Kata's add_devices
// does (src/agent/src/device/mod.rs), and returns its guest node. Devices
// only the guest kernel uses (vfio-pci-gk) are awaited and yield no node.
func (g *Guest) ResolveDevices(ctx context.Context, devs []*Device) ([]DeviceNode, error) {
	if len(devs) > MaxDevices {
		return nil, invalid("%d devices, more than %d", len(devs), MaxDevices)
	}
	var out []DeviceNode
	for i, d := range devs {
		if err := validateDevice(i, d); err != nil {
			return nil, err
		}
		node, err := g.resolve(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("device %q (%s) for %s: %w", d.ID, d.Type, d.ContainerPath, err)
		}
		if node != nil {
			out = append(out, *node)
		}
	}
	return out, nil
}

// validateDevice checks what Kata's validate_device checks, and that the
// paths are plain absolute paths.
func validateDevice(i int, d *Device) error {
	switch {
	case d == nil:
		return invalid("device %d is null", i)
	case d.Type == "":
		return invalid("device %d has no type", i)
	case d.ID == "" && d.VMPath == "":
		return invalid("device %d has neither id nor vm_path", i)
	case d.ContainerPath == "":
		return invalid("device %d has no container_path", i)
	case !filepath.IsAbs(d.ContainerPath) || filepath.Clean(d.ContainerPath) != d.ContainerPath:
		return invalid("device %d: container_path %q is not a clean absolute path", i, d.ContainerPath)
	case len(d.Options) > MaxDeviceOptions:
		return invalid("device %d has %d options, more than %d", i, len(d.Options), MaxDeviceOptions)
	}
	return nil
}

func (g *Guest) resolve(ctx context.Context, d *Device) (*DeviceNode, error) {
	var name string
	var err error
	switch d.Type {
	case DeviceBlk:
		name, err = g.pciBlock(ctx, d.ID)
	case DeviceMmioBlk, DeviceNvdimm:
		name, err = g.namedBlock(ctx, d.VMPath)
	case DeviceSCSI:
		name, err = g.scsiBlock(ctx, d.ID)
	case DeviceVfioPCI, DeviceVfioPCIGK:
		return g.vfioPCI(ctx, d)
	case DeviceVfioAP, DeviceVfioAPCold, DeviceBlkCCW:
		// Kata answers the same off s390x (vfio_device_handler.rs).
		return nil, errdefs.ErrNotImplemented.WithMessage(d.Type + " devices are only supported on s390x")
	default:
		return nil, invalid("unknown device type %q", d.Type)
	}
	if err != nil {
		return nil, err
	}
	return g.node(d.ContainerPath, name, "")
}

// node stats /dev/<name> and describes it.
func (g *Guest) node(containerPath, name, newPath string) (*DeviceNode, error) {
	var st unix.Stat_t
	p := filepath.Join(g.o.Dev, name)
	if err := unix.Stat(p, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	n := &DeviceNode{ContainerPath: containerPath, Path: newPath,
		Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev)))}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		n.Type = "b"
	case unix.S_IFCHR:
		n.Type = "c"
	default:
		return nil, errdefs.ErrFailedPrecondition.WithMessage(p + " is not a device node")
	}
	return n, nil
}

// waitFor polls find until it names a node present in /dev, ctx ends or
// the hot-plug timeout passes. Polling sysfs serves cold- and hot-plugged
// devices alike; the node shows up a moment after sysfs knows the device.
func (g *Guest) waitFor(ctx context.Context, what string, find func() (string, bool)) (string, error) {
	return g.poll(ctx, what, func() (string, bool) {
		name, ok := find()
		if !ok {
			return "", false
		}
		_, err := os.Stat(filepath.Join(g.o.Dev, name))
		return name, err == nil
	})
}

// poll calls find until it reports success, ctx ends or the hot-plug
// timeout passes.
func (g *Guest) poll(ctx context.Context, what string, find func() (string, bool)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, g.o.HotplugTimeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if v, ok := find(); ok {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return "", errs.Newf(errdefs.ErrNotFound, "%s did not appear within %s", what, g.o.HotplugTimeout)
		case <-t.C:
		}
	}
}

// pciDevice walks a PCI path from its root bus through the bridges and
// returns the sysfs directory of the device, once it exists.
func (g *Guest) pciDevice(pciPath string) (func() (string, bool), error) {
	rc, path, err := storage.ParsePCIPath(pciPath)
	if err != nil {
		return nil, err
	}
	return func() (string, bool) { return storage.PCIDeviceDir(g.o.Sysfs, rc, path) }, nil
}

// pciBlock waits for the virtio-blk disk at the PCI path (Kata: the
// device's id, block_device_handler.rs) and returns its name in /dev.
func (g *Guest) pciBlock(ctx context.Context, pciPath string) (string, error) {
	dev, err := g.pciDevice(pciPath)
	if err != nil {
		return "", err
	}
	return g.waitFor(ctx, "virtio-blk disk at PCI path "+pciPath, func() (string, bool) {
		dir, ok := dev()
		if !ok {
			return "", false
		}
		m, _ := filepath.Glob(filepath.Join(dir, "virtio*", "block", "*"))
		if len(m) != 1 {
			return "", false
		}
		return filepath.Base(m[0]), true
	})
}

// namedBlock waits for the block device vm_path names (/dev/<name>).
func (g *Guest) namedBlock(ctx context.Context, vmPath string) (string, error) {
	name, err := DevName(vmPath)
	if err != nil {
		return "", err
	}
	return g.waitFor(ctx, "block device "+vmPath, func() (string, bool) {
		_, err := os.Lstat(filepath.Join(g.o.Sysfs, "class", "block", name))
		return name, err == nil
	})
}

// scsiBlock asks every SCSI host to scan for the disk at "<id>:<lun>" and
// waits for it (Kata scsi_device_handler.rs: channel 0, the disk's target
// id and LUN, matched as "/0:0:<id>:<lun>/block/<name>").
func (g *Guest) scsiBlock(ctx context.Context, addr string) (string, error) {
	id, lun, err := storage.ParseSCSIAddr(addr)
	if err != nil {
		return "", err
	}
	if err := storage.ScanSCSI(g.o.Sysfs, id, lun); err != nil {
		return "", err
	}
	return g.waitFor(ctx, "SCSI disk "+addr, func() (string, bool) { return storage.SCSIBlock(g.o.Sysfs, id, lun) })
}

// DevName returns <name> of a path "/dev/<name>" with one plain element.
func DevName(p string) (string, error) {
	name, ok := strings.CutPrefix(p, "/dev/")
	if !ok || name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return "", invalid("vm_path %q is not /dev/<name>", p)
	}
	return name, nil
}

// VfioOption is one option of a vfio-pci device: a PCI function's address
// on the host and its PCI path in the guest (Kata's runtime writes
// "DDDD:BB:DD.F=<pcipath>", virtcontainers/kata_agent.go appendVfioDevice).
type VfioOption struct {
	HostBDF string
	PCIPath string // empty when the runtime could not resolve it
}

// ParseVfioOption parses "DDDD:BB:DD.F=<guest PCI path>".
func ParseVfioOption(s string) (VfioOption, error) {
	host, path, ok := strings.Cut(s, "=")
	if !ok || !validBDF(host) {
		return VfioOption{}, invalid("VFIO option %q is not <domain:bus:slot.function>=<guest PCI path>", s)
	}
	if path != "" {
		if _, _, err := storage.ParsePCIPath(path); err != nil {
			return VfioOption{}, fmt.Errorf("VFIO option %q: %w", s, err)
		}
	}
	return VfioOption{HostBDF: host, PCIPath: path}, nil
}

// validBDF accepts "DDDD:BB:SS.F" in hex, as the kernel names PCI functions.
func validBDF(s string) bool {
	if len(s) != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.' {
		return false
	}
	for i, c := range s {
		if i == 4 || i == 7 || i == 10 {
			continue
		}
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	slot, _ := strconv.ParseUint(s[8:10], 16, 8)
	fn, _ := strconv.ParseUint(s[11:], 16, 8)
	return slot <= 0x1f && fn <= 7
}
