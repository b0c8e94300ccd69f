package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// pollInterval is how often sysfs is looked at while waiting for a
// hot-plugged device. Polling instead of a uevent socket keeps one code
// path for cold- and hot-plugged disks; a disk appears within a few of these.
const pollInterval = 10 * time.Millisecond

// devices finds block devices the hypervisor attached, by their address on
// the bus, in sysfs. sys and dev are /sys and /dev (fake trees in tests).
type devices struct {
	sys, dev string
	timeout  time.Duration
	// missed, when set, runs after each look that found nothing: tests
	// plug a disk in at that moment instead of guessing when to.
	missed func()
}

// PCISlot is one hop of a PCI path: slot (0–31) and function (0–7).
type PCISlot struct{ Slot, Func uint8 }

func (s PCISlot) String() string { return fmt.Sprintf("%02x.%x", s.Slot, s.Func) }

// maxPCIHops bounds a PCI path: more bridges than this do not exist in a VM.
const maxPCIHops = 16

// ParsePCIPath parses the runtime's PCI path of a virtio-blk disk:
// "SS[.F]/SS[.F]/..." in hex, one hop per bridge, optionally preceded by a
// pxb-pcie root complex bus number (0x20 or more) when the path has at
// least three elements. It returns the root complex ("00" by default).
func ParsePCIPath(s string) (rootComplex string, path []PCISlot, err error) {
	parts := strings.Split(s, "/")
	rootComplex = "00"
	if len(parts) >= 3 {
		if bus, err := strconv.ParseUint(parts[0], 16, 8); err == nil && bus >= 0x20 && len(parts[0]) == 2 {
			rootComplex = parts[0]
			parts = parts[1:]
		}
	}
	if len(parts) > maxPCIHops {
		return "", nil, invalid("PCI path %q has more than %d elements", s, maxPCIHops)
	}
	for _, p := range parts {
		slot, fn, hasFn := strings.Cut(p, ".")
		sv, err := strconv.ParseUint(slot, 16, 8)
		if err != nil || slot == "" || len(slot) > 2 || sv > 0x1f {
			return "", nil, invalid("PCI path %q: slot %q is not a hex number up to 1f", s, slot)
		}
		var fv uint64
		if hasFn {
			fv, err = strconv.ParseUint(fn, 16, 8)
			if err != nil || len(fn) != 1 || fv > 7 {
				return "", nil, invalid("PCI path %q: function %q is not 0–7", s, fn)
			}
		}
		path = append(path, PCISlot{Slot: uint8(sv), Func: uint8(fv)})
	}
	return rootComplex, path, nil
}

// ParseSCSIAddr parses "SCSIID:LUN" (decimal), the address the runtime
// gives for a virtio-scsi disk.
func ParseSCSIAddr(s string) (id, lun uint32, err error) {
	a, b, ok := strings.Cut(s, ":")
	x, err1 := strconv.ParseUint(a, 10, 16)
	y, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, invalid("SCSI address %q: want <scsi id>:<lun> in decimal", s)
	}
	return uint32(x), uint32(y), nil
}

// wait polls find until it reports a device, ctx ends or the hot-plug
// timeout passes.
func (d devices) wait(ctx context.Context, what string, find func() (string, bool)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if name, ok := find(); ok {
			// sysfs knows the disk a moment before devtmpfs has its node.
			if _, err := os.Stat(filepath.Join(d.dev, name)); err == nil {
				return filepath.Join(d.dev, name), nil
			}
		}
		if d.missed != nil {
			d.missed()
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s did not appear within %s: %w", what, d.timeout, errdefs.ErrNotFound)
		case <-t.C:
		}
	}
}

// pci waits for the virtio-blk disk at the PCI path and returns its /dev path.
func (d devices) pci(ctx context.Context, source string) (string, error) {
	rc, path, err := ParsePCIPath(source)
	if err != nil {
		return "", err
	}
	return d.wait(ctx, "virtio-blk disk at PCI path "+source, func() (string, bool) {
		dir, ok := PCIDeviceDir(d.sys, rc, path)
		if !ok {
			return "", false
		}
		m, _ := filepath.Glob(filepath.Join(dir, "virtio*", "block", "*"))
		if len(m) == 0 {
			return "", false
		}
		return filepath.Base(m[0]), true
	})
}

// PCIDeviceDir follows a parsed PCI path (ParsePCIPath) from its root bus
// in sys (/sys) through the bridges and returns the sysfs directory of the
// final device, once it exists. Storage drivers and the guest's device and
// network rpcs find hot-plugged PCI devices this way.
func PCIDeviceDir(sys, rootComplex string, path []PCISlot) (string, bool) {
	bus := "0000:" + rootComplex
	dir := filepath.Join(sys, "devices", "pci0000:"+rootComplex)
	for i, hop := range path {
		dir = filepath.Join(dir, bus+":"+hop.String())
		if _, err := os.Stat(dir); err != nil {
			return "", false
		}
		if i == len(path)-1 {
			break
		}
		// A bridge lists the bus behind it in pci_bus/.
		ents, err := os.ReadDir(filepath.Join(dir, "pci_bus"))
		if err != nil || len(ents) != 1 {
			return "", false
		}
		bus = ents[0].Name()
	}
	return dir, true
}

// named waits for /dev/<name> of an mmio virtio-blk or nvdimm disk to be
// known to the block layer; devpathHas, when set, must occur in its sysfs path.
func (d devices) named(ctx context.Context, source, devpathHas string) (string, error) {
	name, ok := strings.CutPrefix(source, "/dev/")
	if !ok || name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return "", invalid("device source %q must be /dev/<name>", source)
	}
	return d.wait(ctx, "block device "+source, func() (string, bool) {
		link, err := os.Readlink(filepath.Join(d.sys, "class", "block", name))
		if err != nil {
			return "", false
		}
		return name, strings.Contains(link, devpathHas) && strings.HasSuffix(link, "/block/"+name)
	})
}

// scsi asks every SCSI host to scan for the disk and waits for it.
func (d devices) scsi(ctx context.Context, source string) (string, error) {
	id, lun, err := ParseSCSIAddr(source)
	if err != nil {
		return "", err
	}
	if err := ScanSCSI(d.sys, id, lun); err != nil {
		return "", err
	}
	return d.wait(ctx, "SCSI disk "+source, func() (string, bool) { return SCSIBlock(d.sys, id, lun) })
}

// ScanSCSI asks every SCSI host in sys (/sys) to scan for the disk at
// target id and lun.
func ScanSCSI(sys string, id, lun uint32) error {
	hosts, _ := filepath.Glob(filepath.Join(sys, "class", "scsi_host", "*", "scan"))
	for _, h := range hosts {
		// channel 0, target id, lun: the hypervisor attaches disks this way.
		if err := os.WriteFile(h, fmt.Appendf(nil, "0 %d %d", id, lun), 0); err != nil {
			return fmt.Errorf("scan SCSI host %s: %w", h, err)
		}
	}
	return nil
}

// SCSIBlock returns the name in /dev of the SCSI disk at target id and
// lun (channel 0), once the block layer in sys (/sys) knows it.
func SCSIBlock(sys string, id, lun uint32) (string, bool) {
	marker := fmt.Sprintf("/0:0:%d:%d/block/", id, lun)
	classDir := filepath.Join(sys, "class", "block")
	ents, err := os.ReadDir(classDir)
	if err != nil {
		return "", false
	}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(classDir, e.Name()))
		if err == nil && strings.Contains(link, marker) && strings.HasSuffix(link, "/block/"+e.Name()) {
			return e.Name(), true
		}
	}
	return "", false
}
