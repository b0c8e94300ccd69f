package system

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// A fake sysfs as the guest kernel lays it out: a NIC passed through with
// VFIO names its interface right under the PCI function, a virtio-net
// device one level down under virtio<N>.
func TestPCINetdev(t *testing.T) {
	sys := t.TempDir()
	for _, d := range []string{
		"devices/pci0000:00/0000:00:05.0/net/ens5",
		"devices/pci0000:00/0000:00:03.0/virtio1/net/eth0",
		"devices/pci0000:00/0000:00:02.0/pci_bus/0000:01",
		"devices/pci0000:00/0000:00:02.0/0000:01:01.0/net/enp1s1",
		"devices/pci0000:00/0000:00:06.0/virtio2/block/vda",
	} {
		if err := os.MkdirAll(filepath.Join(sys, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	g := New(Options{Sysfs: sys, HotplugTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	for path, want := range map[string]string{"05": "ens5", "03": "eth0", "02/01": "enp1s1"} {
		got, err := g.PCINetdev(ctx, path)
		if err != nil || got != want {
			t.Errorf("PCI path %s: %q, %v; want %q", path, got, err, want)
		}
	}
	// A disk is not a NIC, and an absent device never appears: both wait
	// out the hot-plug timeout.
	for _, path := range []string{"06", "07"} {
		if _, err := g.PCINetdev(ctx, path); !errdefs.IsNotFound(err) {
			t.Errorf("PCI path %s: %v, want NOT_FOUND", path, err)
		}
	}
	if _, err := g.PCINetdev(ctx, "zz/../1"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad PCI path: %v, want INVALID_ARGUMENT", err)
	}
}
