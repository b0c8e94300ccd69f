package system

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// vfioPCI waits for each PCI function of a VFIO device at its guest PCI
// path. For vfio-pci (the container drives the device) each function is
// bound to the vfio-pci driver, all must share one IOMMU group, and the
// result is that group's /dev/vfio/<group> node, which replaces the host's
// group path in the spec. For vfio-pci-gk the guest kernel's own driver
// keeps the device and the spec is left as it is. This follows Kata's
// VfioPciDeviceHandler (src/agent/src/device/vfio_device_handler.rs).
func (g *Guest) vfioPCI(ctx context.Context, d *Device) (*DeviceNode, error) {
	inContainer := d.Type == DeviceVfioPCI
	group := ""
	for _, o := range d.Options {
		opt, err := ParseVfioOption(o)
		if err != nil {
			return nil, err
		}
		if opt.PCIPath == "" {
			// The runtime sends this for a cold-plugged function whose
			// guest path it could not resolve; Kata skips it too.
			continue
		}
		find, err := g.pciDevice(opt.PCIPath)
		if err != nil {
			return nil, err
		}
		dir, err := g.poll(ctx, "PCI device at "+opt.PCIPath, find)
		if err != nil {
			return nil, err
		}
		if !inContainer {
			continue
		}
		if err := g.bindVfio(dir); err != nil {
			return nil, err
		}
		grp, err := iommuGroup(dir)
		if err != nil {
			return nil, err
		}
		if group != "" && grp != group {
			return nil, errs.Newf(errdefs.ErrFailedPrecondition, "%s is not in guest IOMMU group %s", filepath.Base(dir), group)
		}
		group = grp
	}
	if !inContainer {
		return nil, nil
	}
	if group == "" {
		return nil, invalid("VFIO device has no function with a guest PCI path, so no VFIO group")
	}
	name, err := g.waitFor(ctx, "VFIO group "+group, func() (string, bool) { return "vfio/" + group, true })
	if err != nil {
		return nil, err
	}
	return g.node(d.ContainerPath, name, "/dev/vfio/"+group)
}

// bindVfio hands the PCI function at dir to the vfio-pci driver: set the
// override, unbind the current driver unless it is vfio-pci already, and
// ask the kernel to probe it again.
func (g *Guest) bindVfio(dir string) error {
	bdf := filepath.Base(dir)
	if err := os.WriteFile(filepath.Join(dir, "driver_override"), []byte("vfio-pci"), 0); err != nil {
		return fmt.Errorf("driver override of %s: %w", bdf, err)
	}
	drv, err := os.Readlink(filepath.Join(dir, "driver"))
	switch {
	case err == nil && filepath.Base(drv) == "vfio-pci":
		return nil
	case err == nil:
		if err := os.WriteFile(filepath.Join(dir, "driver", "unbind"), []byte(bdf), 0); err != nil {
			return fmt.Errorf("unbind %s from %s: %w", bdf, filepath.Base(drv), err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("driver of %s: %w", bdf, err)
	}
	if err := os.WriteFile(filepath.Join(g.o.Sysfs, "bus", "pci", "drivers_probe"), []byte(bdf), 0); err != nil {
		return fmt.Errorf("probe %s: %w", bdf, err)
	}
	return nil
}

// iommuGroup returns the number of the IOMMU group of the PCI function at
// dir, from its iommu_group link.
func iommuGroup(dir string) (string, error) {
	link, err := os.Readlink(filepath.Join(dir, "iommu_group"))
	if err != nil {
		return "", errs.Newf(errdefs.ErrFailedPrecondition, "%s has no IOMMU group: %v", filepath.Base(dir), err)
	}
	grp := filepath.Base(link)
	if _, err := strconv.ParseUint(grp, 10, 32); err != nil {
		return "", errs.Newf(errdefs.ErrFailedPrecondition, "%s: unexpected IOMMU group link %q", filepath.Base(dir), link)
	}
	return grp, nil
}
