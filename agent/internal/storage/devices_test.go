package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// fakeTree is a fake /sys and /dev in a temp dir: the device lookups only
// read directories and symlinks, so a tree of them stands in for hardware
// this machine does not have (the real disks are exercised in the VM test).
type fakeTree struct {
	t        *testing.T
	sys, dev string
}

func newFakeTree(t *testing.T) *fakeTree {
	d := t.TempDir()
	f := &fakeTree{t: t, sys: filepath.Join(d, "sys"), dev: filepath.Join(d, "dev")}
	f.mkdir(f.dev)
	f.mkdir(filepath.Join(f.sys, "class", "block"))
	return f
}

func (f *fakeTree) mkdir(p string) {
	if err := os.MkdirAll(p, 0o755); err != nil {
		f.t.Fatal(err)
	}
}

// disk adds a block device whose sysfs directory is devpath (relative to
// /sys), with its class/block link and /dev node.
func (f *fakeTree) disk(devpath, name string) {
	f.mkdir(filepath.Join(f.sys, devpath))
	if err := os.Symlink("../../"+devpath, filepath.Join(f.sys, "class", "block", name)); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dev, name), nil, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeTree) devices() devices {
	return devices{sys: f.sys, dev: f.dev, timeout: 300 * time.Millisecond}
}

func TestPCIDiskBehindBridge(t *testing.T) {
	f := newFakeTree(t)
	bridge := "devices/pci0000:00/0000:00:02.0"
	f.mkdir(filepath.Join(f.sys, bridge, "pci_bus", "0000:01"))
	f.disk(bridge+"/0000:01:03.0/virtio3/block/vdb", "vdb")
	got, err := f.devices().pci(context.Background(), "02/03")
	if err != nil || got != filepath.Join(f.dev, "vdb") {
		t.Fatalf("got %q %v", got, err)
	}
	// A pxb-pcie root complex.
	f.disk("devices/pci0000:30/0000:30:00.0/0000:31:01.0/virtio9/block/vdc", "vdc")
	f.mkdir(filepath.Join(f.sys, "devices/pci0000:30/0000:30:00.0/pci_bus/0000:31"))
	got, err = f.devices().pci(context.Background(), "30/00.0/01.0")
	if err != nil || got != filepath.Join(f.dev, "vdc") {
		t.Fatalf("pxb: got %q %v", got, err)
	}
}

func TestDiskHotplugAppearsLater(t *testing.T) {
	f := newFakeTree(t)
	d := f.devices()
	d.timeout = 5 * time.Second
	// The disk is plugged in once the first look has missed it, so the
	// wait must look again to find it.
	misses := 0
	d.missed = func() {
		if misses++; misses == 1 {
			f.disk("devices/pci0000:00/0000:00:05.0/virtio1/block/vda", "vda")
		}
	}
	got, err := d.pci(context.Background(), "05")
	if err != nil || filepath.Base(got) != "vda" {
		t.Fatalf("got %q %v", got, err)
	}
	if misses != 1 {
		t.Fatalf("found after %d misses, want 1", misses)
	}
}

func TestDiskNeverAppears(t *testing.T) {
	f := newFakeTree(t)
	_, err := f.devices().pci(context.Background(), "07")
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "did not appear") {
		t.Fatalf("err %v", err)
	}
}

func TestSCSIScanAndLookup(t *testing.T) {
	f := newFakeTree(t)
	host := filepath.Join(f.sys, "class", "scsi_host", "host0")
	f.mkdir(host)
	if err := os.WriteFile(filepath.Join(host, "scan"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.disk("devices/pci0000:00/0000:00:04.0/virtio2/host0/target0:0:1/0:0:1:2/block/sdb", "sdb")
	f.disk("devices/pci0000:00/0000:00:04.0/virtio2/host0/target0:0:1/0:0:1:20/block/sdc", "sdc")
	got, err := f.devices().scsi(context.Background(), "1:2")
	if err != nil || filepath.Base(got) != "sdb" {
		t.Fatalf("got %q %v", got, err)
	}
	if scan, _ := os.ReadFile(filepath.Join(host, "scan")); string(scan) != "0 1 2" {
		t.Errorf("scan request %q", scan)
	}
}

func TestNamedDisks(t *testing.T) {
	f := newFakeTree(t)
	f.disk("devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0/pfn0.1/block/pmem0", "pmem0")
	f.disk("devices/platform/virtio-mmio.0/virtio0/block/vda", "vda")
	f.disk("devices/platform/fake/block/pmem1", "pmem1")
	d := f.devices()
	if got, err := d.named(context.Background(), "/dev/pmem0", "/devices/LNXSYSTM"); err != nil || filepath.Base(got) != "pmem0" {
		t.Errorf("nvdimm: %q %v", got, err)
	}
	if _, err := d.named(context.Background(), "/dev/pmem1", "/devices/LNXSYSTM"); !errdefs.IsNotFound(err) {
		t.Errorf("pmem outside ACPI accepted: %v", err)
	}
	if got, err := d.named(context.Background(), "/dev/vda", ""); err != nil || filepath.Base(got) != "vda" {
		t.Errorf("mmio: %q %v", got, err)
	}
	for _, bad := range []string{"vda", "/dev/", "/dev/../etc", "/dev/a/b"} {
		if _, err := d.named(context.Background(), bad, ""); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestParsePCIPath(t *testing.T) {
	good := map[string]string{"02": "00 [02.0]", "02/03": "00 [02.0 03.0]", "1f.7": "00 [1f.7]", "20/01/02": "20 [01.0 02.0]", "01/01/02": "00 [01.0 01.0 02.0]"}
	for in, want := range good {
		rc, p, err := ParsePCIPath(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		parts := make([]string, len(p))
		for i, s := range p {
			parts[i] = s.String()
		}
		if got := rc + " [" + strings.Join(parts, " ") + "]"; got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", "/", "20", "02/", "g1", "20.0", "02.8", "123", "02.", strings.Repeat("01/", 20) + "01"} {
		if _, _, err := ParsePCIPath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParsePCIPath(f *testing.F) {
	for _, s := range []string{"02", "02/03", "20/01/02.1", "1f.7", "zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rc, p, err := ParsePCIPath(s)
		if err != nil {
			return
		}
		if len(p) == 0 || len(p) > maxPCIHops || len(rc) != 2 {
			t.Fatalf("%q: rc %q path %v", s, rc, p)
		}
		for _, h := range p {
			if h.Slot > 0x1f || h.Func > 7 {
				t.Fatalf("%q: hop %v out of range", s, h)
			}
		}
	})
}

func FuzzParseSCSIAddr(f *testing.F) {
	for _, s := range []string{"0:0", "1:2", "65535:7", ":", "a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, lun, err := ParseSCSIAddr(s)
		if err != nil {
			return
		}
		if id > 0xffff || !strings.Contains(s, ":") {
			t.Fatalf("%q → %d:%d", s, id, lun)
		}
	})
}
