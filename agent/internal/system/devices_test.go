package system

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// devTree is a fake /sys and a /dev with real device nodes, in temp dirs.
type devTree struct{ sys, dev string }

func newDevTree(t *testing.T) devTree {
	testenv.RequiresRoot(t) // mknod
	return devTree{sys: t.TempDir(), dev: t.TempDir()}
}

func (d devTree) guest() *Guest {
	return New(Options{Sysfs: d.sys, Dev: d.dev, HotplugTimeout: 300 * time.Millisecond})
}

func (d devTree) mknod(t *testing.T, name string, mode uint32, major, minor uint32) {
	t.Helper()
	p := filepath.Join(d.dev, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(p, mode|0o600, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatal(err)
	}
}

func (d devTree) mkdir(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(d.sys, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func (d devTree) symlink(t *testing.T, target, rel string) {
	t.Helper()
	p := filepath.Join(d.sys, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// The device shapes below are what Kata 4.1's runtime sends
// (src/runtime/virtcontainers/kata_agent.go appendBlockDevice, line 1181:
// blk carries the PCI path in id and the host's /dev path in vm_path; scsi
// the "<scsi id>:<lun>" in id; mmioblk and nvdimm a /dev path in vm_path;
// appendVfioDevice, line 1238: the group number in id and
// "0000:<host BDF>=<guest PCI path>" options).
func TestResolveDevices(t *testing.T) {
	ctx := context.Background()

	t.Run("blk by PCI path behind a bridge", func(t *testing.T) {
		d := newDevTree(t)
		bridge := d.mkdir(t, "devices/pci0000:00/0000:00:02.0")
		d.mkdir(t, "devices/pci0000:00/0000:00:02.0/pci_bus/0000:01")
		d.mkdir(t, filepath.Join(strings.TrimPrefix(bridge, d.sys), "0000:01:03.0/virtio4/block/vdc"))
		d.mknod(t, "vdc", unix.S_IFBLK, 252, 32)
		got, err := d.guest().ResolveDevices(ctx, []*Device{{ID: "02/03", Type: "blk", VMPath: "/dev/vdz", ContainerPath: "/dev/xda"}})
		want := DeviceNode{ContainerPath: "/dev/xda", Type: "b", Major: 252, Minor: 32}
		if err != nil || len(got) != 1 || got[0] != want {
			t.Fatalf("got %+v, %v", got, err)
		}
	})

	t.Run("blk hot-plugged while waiting", func(t *testing.T) {
		d := newDevTree(t)
		g := New(Options{Sysfs: d.sys, Dev: d.dev, HotplugTimeout: 10 * time.Second})
		done := make(chan error, 1)
		var got []DeviceNode
		go func() {
			var err error
			got, err = g.ResolveDevices(ctx, []*Device{{ID: "05", Type: "blk", ContainerPath: "/dev/xdb"}})
			done <- err
		}()
		d.mkdir(t, "devices/pci0000:00/0000:00:05.0/virtio2/block/vdb")
		d.mknod(t, "vdb", unix.S_IFBLK, 252, 16)
		if err := <-done; err != nil || len(got) != 1 || got[0].Minor != 16 {
			t.Fatalf("got %+v, %v", got, err)
		}
	})

	t.Run("scsi scans and matches its address", func(t *testing.T) {
		d := newDevTree(t)
		scan := filepath.Join(d.mkdir(t, "class/scsi_host/host0"), "scan")
		if err := os.WriteFile(scan, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		d.symlink(t, "../../devices/pci0000:00/0000:00:04.0/virtio1/host0/target0:0:1/0:0:1:2/block/sdb", "class/block/sdb")
		d.symlink(t, "../../devices/pci0000:00/0000:00:04.0/virtio1/host0/target0:0:1/0:0:1:20/block/sdc", "class/block/sdc")
		d.mknod(t, "sdb", unix.S_IFBLK, 8, 16)
		got, err := d.guest().ResolveDevices(ctx, []*Device{{ID: "1:2", Type: "scsi", ContainerPath: "/dev/sda"}})
		if err != nil || len(got) != 1 || got[0].Major != 8 || got[0].Minor != 16 {
			t.Fatalf("got %+v, %v", got, err)
		}
		if b, _ := os.ReadFile(scan); string(b) != "0 1 2" {
			t.Fatalf("scan wrote %q", b)
		}
	})

	t.Run("mmioblk and nvdimm by name", func(t *testing.T) {
		d := newDevTree(t)
		d.symlink(t, "../../devices/platform/a000.virtio_mmio/virtio0/block/vda", "class/block/vda")
		d.symlink(t, "../../devices/platform/pmem0/ndbus0/region0/namespace0.0/block/pmem0", "class/block/pmem0")
		d.mknod(t, "vda", unix.S_IFBLK, 254, 0)
		d.mknod(t, "pmem0", unix.S_IFBLK, 259, 0)
		got, err := d.guest().ResolveDevices(ctx, []*Device{
			{ID: "/dev/vda", VMPath: "/dev/vda", Type: "mmioblk", ContainerPath: "/dev/m"},
			{VMPath: "/dev/pmem0", Type: "nvdimm", ContainerPath: "/dev/p"},
		})
		if err != nil || len(got) != 2 || got[0].Major != 254 || got[1].Major != 259 {
			t.Fatalf("got %+v, %v", got, err)
		}
	})

	t.Run("vfio-pci binds, finds the group, renames the node", func(t *testing.T) {
		d := newDevTree(t)
		fn := d.mkdir(t, "devices/pci0000:00/0000:00:06.0")
		drv := d.mkdir(t, "bus/pci/drivers/nvme")
		if err := os.WriteFile(filepath.Join(drv, "unbind"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d.sys, "bus/pci/drivers_probe"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fn, "driver_override"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(drv, filepath.Join(fn, "driver")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../../kernel/iommu_groups/7", filepath.Join(fn, "iommu_group")); err != nil {
			t.Fatal(err)
		}
		d.mknod(t, "vfio/7", unix.S_IFCHR, 243, 1)
		got, err := d.guest().ResolveDevices(ctx, []*Device{{ID: "45", Type: "vfio-pci", ContainerPath: "/dev/vfio/45", Options: []string{"0000:41:00.0=06"}}})
		want := DeviceNode{ContainerPath: "/dev/vfio/45", Type: "c", Major: 243, Minor: 1, Path: "/dev/vfio/7"}
		if err != nil || len(got) != 1 || got[0] != want {
			t.Fatalf("got %+v, %v", got, err)
		}
		for file, want := range map[string]string{
			filepath.Join(fn, "driver_override"):          "vfio-pci",
			filepath.Join(drv, "unbind"):                  "0000:00:06.0",
			filepath.Join(d.sys, "bus/pci/drivers_probe"): "0000:00:06.0",
		} {
			if b, _ := os.ReadFile(file); string(b) != want {
				t.Errorf("%s: %q, want %q", file, b, want)
			}
		}
	})

	t.Run("vfio-pci-gk waits and leaves the spec alone", func(t *testing.T) {
		d := newDevTree(t)
		d.mkdir(t, "devices/pci0000:00/0000:00:07.0")
		got, err := d.guest().ResolveDevices(ctx, []*Device{{ID: "3", Type: "vfio-pci-gk", ContainerPath: "/dev/vfio/3", Options: []string{"0000:41:00.0=07"}}})
		if err != nil || len(got) != 0 {
			t.Fatalf("got %+v, %v", got, err)
		}
	})

	t.Run("a device that never comes", func(t *testing.T) {
		d := newDevTree(t)
		_, err := d.guest().ResolveDevices(ctx, []*Device{{ID: "09", Type: "blk", ContainerPath: "/dev/xda"}})
		if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "did not appear") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestResolveDevicesRefusesBadInput(t *testing.T) {
	d := devTree{sys: t.TempDir(), dev: t.TempDir()}
	for _, tc := range []struct {
		dev  *Device
		want string
		is   func(error) bool
	}{
		{nil, "null", errdefs.IsInvalidArgument},
		{&Device{ID: "02", ContainerPath: "/dev/x"}, "no type", errdefs.IsInvalidArgument},
		{&Device{Type: "blk", ContainerPath: "/dev/x"}, "neither id nor vm_path", errdefs.IsInvalidArgument},
		{&Device{Type: "blk", ID: "02"}, "no container_path", errdefs.IsInvalidArgument},
		{&Device{Type: "blk", ID: "02", ContainerPath: "dev/x"}, "clean absolute", errdefs.IsInvalidArgument},
		{&Device{Type: "blk", ID: "02", ContainerPath: "/dev/../etc/x"}, "clean absolute", errdefs.IsInvalidArgument},
		{&Device{Type: "floppy", ID: "1", ContainerPath: "/dev/fd0"}, `unknown device type "floppy"`, errdefs.IsInvalidArgument},
		{&Device{Type: "blk", ID: "zz", ContainerPath: "/dev/x"}, "slot", errdefs.IsInvalidArgument},
		{&Device{Type: "scsi", ID: "1", ContainerPath: "/dev/x"}, "SCSI address", errdefs.IsInvalidArgument},
		{&Device{Type: "mmioblk", VMPath: "/dev/../etc/passwd", ContainerPath: "/dev/x"}, "not /dev/<name>", errdefs.IsInvalidArgument},
		{&Device{Type: "nvdimm", VMPath: "/etc/passwd", ContainerPath: "/dev/x"}, "not /dev/<name>", errdefs.IsInvalidArgument},
		{&Device{Type: "nvdimm", VMPath: "/dev/a/b", ContainerPath: "/dev/x"}, "not /dev/<name>", errdefs.IsInvalidArgument},
		{&Device{Type: "vfio-pci", ID: "1", ContainerPath: "/dev/vfio/1", Options: []string{"41:00.0=02"}}, "VFIO option", errdefs.IsInvalidArgument},
		{&Device{Type: "vfio-pci", ID: "1", ContainerPath: "/dev/vfio/1", Options: []string{"0000:41:00.0=../02"}}, "slot", errdefs.IsInvalidArgument},
		{&Device{Type: "vfio-pci", ID: "1", ContainerPath: "/dev/vfio/1", Options: []string{"0000:41:00.0="}}, "no VFIO group", errdefs.IsInvalidArgument},
		{&Device{Type: "vfio-pci", ID: "1", ContainerPath: "/dev/vfio/1", Options: make([]string, MaxDeviceOptions+1)}, "options", errdefs.IsInvalidArgument},
		{&Device{Type: "vfio-ap", ID: "1", ContainerPath: "/dev/vfio/1"}, "s390x", errdefs.IsNotImplemented},
	} {
		_, err := d.guest().ResolveDevices(context.Background(), []*Device{tc.dev})
		if !tc.is(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.dev, err, tc.want)
		}
	}
	if _, err := d.guest().ResolveDevices(context.Background(), make([]*Device, MaxDevices+1)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("too many devices: %v", err)
	}
}

func TestParseVfioOption(t *testing.T) {
	for in, want := range map[string]VfioOption{
		"0000:41:00.0=02":       {HostBDF: "0000:41:00.0", PCIPath: "02"},
		"0000:c1:1f.7=02/01.3":  {HostBDF: "0000:c1:1f.7", PCIPath: "02/01.3"},
		"0000:41:00.0=20/01/00": {HostBDF: "0000:41:00.0", PCIPath: "20/01/00"},
		"0000:41:00.0=":         {HostBDF: "0000:41:00.0"},
	} {
		if got, err := ParseVfioOption(in); err != nil || got != want {
			t.Errorf("%q: %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "=", "0000:41:00.0", "0000:41:20.0=02", "0000:41:00.8=02", "0000:41:00.0=02/", "g000:41:00.0=02", "0000-41:00.0=02"} {
		if _, err := ParseVfioOption(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// FuzzDeviceAddresses feeds the parsers of a device's addresses arbitrary
// text: they answer INVALID_ARGUMENT or a value that prints back sanely,
// never panic.
func FuzzDeviceAddresses(f *testing.F) {
	for _, s := range []string{"0000:41:00.0=02", "0000:41:00.0=20/01/00.1", "/dev/vda", "/dev/..", "1:2", "02/03"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if o, err := ParseVfioOption(s); err == nil {
			if !validBDF(o.HostBDF) || o.HostBDF+"="+o.PCIPath != s {
				t.Fatalf("%q parsed to %+v", s, o)
			}
		} else if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("%q: %v", s, err)
		}
		if name, err := DevName(s); err == nil {
			if strings.Contains(name, "/") || name == ".." || filepath.Join("/dev", name) != filepath.Clean("/dev/"+name) {
				t.Fatalf("%q named %q", s, name)
			}
		} else if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("%q: %v", s, err)
		}
		_, _, _ = storage.ParsePCIPath(s)
	})
}
