package system

import (
	"context"
	"path/filepath"
	"sort"
)

// PCINetdev waits, within the hot-plug timeout, for the network device at a
// PCI path and returns its interface name. A NIC passed through with VFIO
// sits right under its PCI function (<dev>/net/<name>); a virtio-net device
// one level down (<dev>/virtio<N>/net/<name>). Kata does the same before it
// updates such an interface (src/agent/src/rpc.rs update_interface,
// wait_for_pci_net_interface; netlink.rs netdev_name_from_pci_path).
func (g *Guest) PCINetdev(ctx context.Context, pciPath string) (string, error) {
	dev, err := g.pciDevice(pciPath)
	if err != nil {
		return "", err
	}
	return g.poll(ctx, "network device at PCI path "+pciPath, func() (string, bool) {
		dir, ok := dev()
		if !ok {
			return "", false
		}
		for _, pattern := range []string{"net/*", "virtio*/net/*"} {
			if m, _ := filepath.Glob(filepath.Join(dir, pattern)); len(m) > 0 {
				sort.Strings(m)
				return filepath.Base(m[0]), true
			}
		}
		return "", false
	})
}
