package rpc_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// loopDevice attaches a loop device of the test's own to a small file in
// a temp dir and returns its /dev path.
func loopDevice(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "--detach", dev).Run() })
	return dev
}

// TestCreateContainerDevices sends a raw block volume the way Kata 4.1's
// runtime does with block_device_driver = "virtio-mmio"
// (src/runtime/virtcontainers/kata_agent.go appendBlockDevice, line 1181:
// type "mmioblk", vm_path the guest's /dev path), with containerd's
// linux.devices entry and cgroup rule carrying the host's numbers. The
// container must see the guest's device under the path the pod asked for.
func TestCreateContainerDevices(t *testing.T) {
	a := startAgent(t, "")
	ctx := ctxT(t)
	loop := loopDevice(t)
	var st unix.Stat_t
	if err := unix.Stat(loop, &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x:%x", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))

	s := spec(a.rootfs(t, "blk"), "stat", "-c", "%t:%T", "/dev/xda")
	s.Linux.Devices = []*agentpb.LinuxDevice{{Path: "/dev/xda", Type: "b", Major: 253, Minor: 99, FileMode: 0o660}}
	s.Linux.Resources = &agentpb.LinuxResources{Devices: []*agentpb.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm", Major: -1, Minor: -1},
		{Allow: true, Type: "b", Major: 253, Minor: 99, Access: "rwm"},
	}}
	must(t)(a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "blk", ExecId: "blk", OCI: s,
		Devices: []*agentpb.Device{{Id: loop, Type: "mmioblk", VmPath: loop, ContainerPath: "/dev/xda"}}}))
	must(t)(a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "blk"}))
	if got := strings.TrimSpace(a.readAll(t, "blk", "blk", false)); got != want {
		t.Fatalf("/dev/xda in the container is %s, want the guest's %s", got, want)
	}
	if st := a.wait(t, "blk", "blk"); st != 0 {
		t.Fatalf("exit status %d", st)
	}

	for _, tc := range []struct {
		dev  *agentpb.Device
		want string
	}{
		{&agentpb.Device{Id: "1", Type: "floppy", ContainerPath: "/dev/xda"}, "unknown device type"},
		{&agentpb.Device{Type: "mmioblk", VmPath: "/dev/../etc/passwd", ContainerPath: "/dev/xda"}, "not /dev/<name>"},
		{&agentpb.Device{Type: "mmioblk", ContainerPath: "/dev/xda"}, "neither id nor vm_path"},
		{&agentpb.Device{Type: "mmioblk", VmPath: loop, ContainerPath: "/dev/xdz"}, "missing from the OCI spec"},
	} {
		s := spec(a.rootfs(t, "bad"), "true")
		s.Linux.Devices = []*agentpb.LinuxDevice{{Path: "/dev/xda", Type: "b", Major: 253, Minor: 99}}
		_, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "bad", ExecId: "bad", OCI: s, Devices: []*agentpb.Device{tc.dev}})
		wantCode(t, tc.dev.String(), err, codes.InvalidArgument, tc.want)
	}
}
