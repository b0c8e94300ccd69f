package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/tools/layer"
)

// verifiedLayer builds a small EROFS image holding one file, appends its
// dm-verity tree as containerd's differ does, and attaches it to a loop
// device. It returns the device, the image and the storage options
// runtime-rs would send for it as a plain (non-GPT) verified layer.
func verifiedLayer(t *testing.T, content []byte) (dev, img string, v *layer.Verity) {
	t.Helper()
	testenv.RequiresRoot(t)
	m, err := layer.LookupMkfs(context.Background(), "")
	if err != nil {
		t.Fatalf("%v (ci/install-deps.sh installs one)", err)
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "data"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	img = filepath.Join(t.TempDir(), "layer.erofs")
	if out, err := exec.Command(m.Path, "-T0", "--mkfs-time", img, src).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v\n%s", err, out)
	}
	if v, err = layer.AppendVerity(img, layer.DefaultSalt, [16]byte{1}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev, img, v
}

func layerStorage(dev, mp string, v *layer.Verity, multi bool) *storage.Storage {
	opts := []string{"X-kata.dmverity-enabled=true",
		"X-kata.dmverity.roothash=" + v.RootHashHex(),
		fmt.Sprintf("X-kata.dmverity.hashoffset=%d", v.HashOffset),
		"X-kata.dmverity.salt=" + strings.Repeat("0", 64)}
	if multi {
		opts = append(opts, "X-kata.overlay-lower", "X-kata.multi-layer=true")
	}
	return &storage.Storage{Driver: "blk", Source: dev, Fstype: "erofs", MountPoint: mp, Options: opts}
}

// A layer group on a kernel without dm-verity is refused before any device
// or mount is touched: never mounted unverified.
func TestErofsLayersWithoutDeviceMapper(t *testing.T) {
	testenv.RequiresRoot(t)
	run := filepath.Join(t.TempDir(), "kata")
	m, err := storage.NewDefault(storage.Options{KataRunDir: run, DMControl: filepath.Join(t.TempDir(), "no-control")})
	if err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(run, "c1", "rootfs")
	s := layerStorage("/dev/loop-never-looked-up", mp, &layer.Verity{RootHash: bytes.Repeat([]byte{0xab}, 32), HashOffset: 4096}, true)
	_, err = m.Add(context.Background(), "c1", []*storage.Storage{s})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "device-mapper") {
		t.Fatalf("want FAILED_PRECONDITION naming device-mapper, got %v", err)
	}
	if len(m.MountPoints()) != 0 || len(mountsUnder(t, run)) != 0 {
		t.Fatalf("left behind: %v %v", m.MountPoints(), mountsUnder(t, run))
	}
	if _, err := os.Stat(filepath.Join(run, "c1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the container's directory was created: %v", err)
	}
}

// With a kernel that has dm-verity (the guest's; ci/e2e runs this path in
// the VM too): the layer mounts under an overlay, reads its data, and after
// one flipped byte in the data the read fails with EIO instead of returning
// other bytes. Without dm-verity the refusal above is what happens.
func TestErofsLayersRealKernel(t *testing.T) {
	want := bytes.Repeat([]byte("cocoon-layer-data"), 4096)
	dev, img, v := verifiedLayer(t, want)
	run := filepath.Join(t.TempDir(), "kata")
	m, err := storage.NewDefault(storage.Options{KataRunDir: run})
	if err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(run, "c1", "rootfs")
	_, err = m.Add(context.Background(), "c1", []*storage.Storage{layerStorage(dev, mp, v, true)})
	if targets, _ := exec.Command("dmsetup", "targets").Output(); !bytes.Contains(targets, []byte("verity")) {
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "device-mapper") {
			t.Fatalf("kernel without dm-verity: want FAILED_PRECONDITION naming device-mapper, got %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(mp, "data")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read through the overlay: %d bytes, %v", len(got), err)
	}
	if err := os.WriteFile(filepath.Join(mp, "new"), []byte("x"), 0o600); err != nil {
		t.Fatalf("the upper is not writable: %v", err)
	}
	if err := m.Release(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	// Flip one byte of the file's data on the backing image, then mount
	// again with a cold cache.
	data, _ := os.ReadFile(img)
	at := bytes.Index(data, want[:64])
	if at < 0 || uint64(at) >= v.HashOffset {
		t.Fatalf("file data not found in the image")
	}
	f, _ := os.OpenFile(img, os.O_RDWR, 0)
	f.WriteAt([]byte{data[at] ^ 0xff}, int64(at))
	f.Close()
	_ = exec.Command("blockdev", "--flushbufs", dev).Run()
	if _, err := m.Add(context.Background(), "c2", []*storage.Storage{layerStorage(dev, filepath.Join(run, "c2", "rootfs"), v, true)}); err != nil {
		t.Fatal(err)
	}
	defer m.Release(context.Background(), "c2")
	got, err := os.ReadFile(filepath.Join(run, "c2", "rootfs", "data"))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a tampered block: %d bytes, err %v; want EIO", len(got), err)
	}
}
