package sandbox_test

import (
	"context"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
)

// loopDevice attaches a fresh loop device to a small file and returns its
// node and numbers.
func loopDevice(t *testing.T) (string, int64, int64) {
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
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	return dev, int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
}

// trustedSpec is a container spec listing the pod's raw block volume at
// Kata's trusted_store path, as it reaches the sandbox once the request's
// devices were mapped to the guest's numbers.
func trustedSpec(root string, major, minor int64) *specs.Spec {
	s := specFor(root, "true")
	mode, id := os.FileMode(0o600), uint32(0)
	s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: storage.TrustedStoreDevice, Type: "b", Major: major, Minor: minor, FileMode: &mode, UID: &id, GID: &id})
	return s
}

// The trusted store is mounted once per sandbox, before the first
// container's storages (where the image is pulled), shared by later
// containers naming the same device, refused for another device, and
// released by DestroySandbox.
func TestTrustedStoreOncePerSandboxBeforeStorages(t *testing.T) {
	dev, major, minor := loopDevice(t)
	var mu sync.Mutex
	var events []string
	record := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	mgr := storage.NewManager()
	err := mgr.Register("image_guest_pull", storage.DriverFunc(func(_ context.Context, r storage.Request) (storage.Mounted, error) {
		record("pull " + r.Owner)
		return storage.Mounted{Path: r.Storage.MountPoint}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	p := newPodOpts(t, func(o *sandbox.Options) {
		o.Storage = mgr
		o.TrustedStore = func(_ context.Context, node string) (func(context.Context) error, error) {
			record("mount " + node)
			return func(context.Context) error { record("release " + node); return nil }, nil
		}
	})
	ctx := context.Background()
	pull := func(cid string) []*storage.Storage {
		return []*storage.Storage{{Driver: "image_guest_pull", Source: "example.test/app:1", MountPoint: filepath.Join(p.run, cid, "pulled")}}
	}
	for _, cid := range []string{"c1", "c2"} {
		p.output(t, sandbox.ContainerRequest{ID: cid, Spec: trustedSpec(p.rootfs(t, cid), major, minor), Storages: pull(cid)})
	}
	want := []string{"mount " + dev, "pull c1", "pull c2"}
	if strings.Join(events, "; ") != strings.Join(want, "; ") {
		t.Fatalf("events %q, want %q", events, want)
	}

	// Another device is not the pod's trusted store.
	other, omajor, ominor := loopDevice(t)
	_, err = p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c3", Spec: trustedSpec(p.rootfs(t, "c3"), omajor, ominor), Storages: pull("c3")})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "already device") {
		t.Errorf("second device %s: %v, want FAILED_PRECONDITION", other, err)
	}
	if len(events) != 3 || len(p.Containers()) != 0 {
		t.Errorf("refused container left events %q, containers %v", events, p.Containers())
	}

	if err := p.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if events[len(events)-1] != "release "+dev || len(events) != 4 {
		t.Errorf("events after DestroySandbox twice %q, want one release of %s", events, dev)
	}
}

func TestTrustedStoreRefusals(t *testing.T) {
	_, major, minor := loopDevice(t)
	ctx := context.Background()

	t.Run("not-supported", func(t *testing.T) {
		p := newPodOpts(t, func(*sandbox.Options) {})
		_, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: trustedSpec(p.rootfs(t, "c1"), major, minor)})
		if !errdefs.IsNotImplemented(err) {
			t.Errorf("without a trusted store hook: %v, want NOT_IMPLEMENTED", err)
		}
	})

	called := false
	hook := func(o *sandbox.Options) {
		o.TrustedStore = func(context.Context, string) (func(context.Context) error, error) {
			called = true
			return func(context.Context) error { return nil }, nil
		}
	}
	for _, tc := range []struct {
		name         string
		typ          string
		major, minor int64
		want         func(error) bool
	}{
		{"character-device", "c", 1, 3, errdefs.IsInvalidArgument},
		{"no-such-device", "b", 0xfff, 0xffffe, errdefs.IsNotFound},
		{"numbers-out-of-range", "b", -1, 0, errdefs.IsInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPodOpts(t, hook)
			s := trustedSpec(p.rootfs(t, "c1"), tc.major, tc.minor)
			s.Linux.Devices[0].Type = tc.typ
			_, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: s})
			if !tc.want(err) || called {
				t.Errorf("%v (hook called %v)", err, called)
			}
		})
	}
}
