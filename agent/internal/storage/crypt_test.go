package storage_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// pattern fills the test disks, so a test can tell that nothing (no plain
// file system, no LUKS header) was written to a disk the agent refused.
var pattern = bytes.Repeat([]byte("cocoon-untouched"), 4096/16)

// loopDisk is a 64 MiB loop device over a temp file filled with pattern.
func loopDisk(t *testing.T) (dev, img string) {
	t.Helper()
	img = filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, bytes.Repeat(pattern, 64<<20/len(pattern)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev, img
}

// untouched checks the first MiB of the disk's backing file.
func untouched(t *testing.T, img string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(buf); off += len(pattern) {
		if !bytes.Equal(buf[off:off+len(pattern)], pattern) {
			t.Fatalf("the refused disk was written at offset %d", off)
		}
	}
}

// cryptEnv is a storage manager whose encrypted disks get mapper names
// unique to this test process and keep their LUKS headers in a temp dir.
func cryptEnv(t *testing.T, dmControl string) (*storage.Manager, string, string) {
	t.Helper()
	testenv.RequiresRoot(t)
	run := filepath.Join(t.TempDir(), "kata")
	headers := filepath.Join(t.TempDir(), "crypt")
	m, err := storage.NewDefault(storage.Options{
		KataRunDir: run,
		CryptName:  "cocoon-test-" + strings.ReplaceAll(t.Name(), "/", "-"),
		CryptDir:   headers,
		DMControl:  dmControl,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, run, headers
}

// emptyDir is a block emptyDir as CoCo's Kata sends it with
// emptydir_mode = "block-encrypted": Kata 4.1 Go runtime
// src/runtime/virtcontainers/kata_agent.go:2034-2040 appends
// "encryption_key=ephemeral" then "create_filesystem" to driver_options;
// runtime-rs crates/resource/src/volume/block_emptydir_volume.rs:198-215 does
// the same, fstype "ext4" (line 96), mount point under
// /run/kata-containers/sandbox/storage/ (line 152).
func emptyDir(dev, run string) *storage.Storage {
	return &storage.Storage{
		Driver: "blk", Source: dev, Fstype: "ext4",
		MountPoint:    filepath.Join(run, "sandbox", "storage", "ZGlzaw"),
		DriverOptions: []string{"encryption_key=ephemeral", "create_filesystem"},
	}
}

func emptyDirNothingLeft(t *testing.T, m *storage.Manager, img, headers string) {
	t.Helper()
	if len(m.MountPoints()) != 0 {
		t.Errorf("manager holds %v", m.MountPoints())
	}
	untouched(t, img)
	if ents, _ := os.ReadDir(headers); len(ents) != 0 {
		t.Errorf("key material left in %s: %v", headers, names(ents))
	}
}

// Bad requests are refused before the disk is touched.
func TestEncryptedBlockBadOptions(t *testing.T) {
	m, run, headers := cryptEnv(t, "")
	dev, img := loopDisk(t)
	cases := map[string]func(s *storage.Storage){
		// Kata's agent refuses the key without a fresh file system
		// (src/agent/src/storage/block_handler.rs:98-104): encrypting a
		// disk that already holds data would destroy it.
		"no create_filesystem": func(s *storage.Storage) { s.DriverOptions = []string{"encryption_key=ephemeral"} },
		"xfs":                  func(s *storage.Storage) { s.Fstype = "xfs" },
		"key from elsewhere":   func(s *storage.Storage) { s.DriverOptions[0] = "encryption_key=kbs:///default/key/1" },
		"empty key":            func(s *storage.Storage) { s.DriverOptions[0] = "encryption_key=" },
	}
	for name, mutate := range cases {
		s := emptyDir(dev, run)
		mutate(s)
		_, err := m.Add(context.Background(), "c1", []*storage.Storage{s})
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: want INVALID_ARGUMENT, got %v", name, err)
		}
	}
	emptyDirNothingLeft(t, m, img, headers)
}

// Without cryptsetup in the image the agent refuses; it never mounts the
// disk unencrypted.
func TestEncryptedBlockWithoutCryptsetup(t *testing.T) {
	m, run, headers := cryptEnv(t, "")
	dev, img := loopDisk(t)
	t.Setenv("PATH", t.TempDir())
	_, err := m.Add(context.Background(), "c1", []*storage.Storage{emptyDir(dev, run)})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "cryptsetup") {
		t.Fatalf("want FAILED_PRECONDITION naming cryptsetup, got %v", err)
	}
	emptyDirNothingLeft(t, m, img, headers)
}

// A kernel without device-mapper (no control node) is a clear error.
func TestEncryptedBlockWithoutDeviceMapper(t *testing.T) {
	m, run, headers := cryptEnv(t, filepath.Join(t.TempDir(), "no-control"))
	dev, img := loopDisk(t)
	_, err := m.Add(context.Background(), "c1", []*storage.Storage{emptyDir(dev, run)})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "device-mapper") {
		t.Fatalf("want FAILED_PRECONDITION naming device-mapper, got %v", err)
	}
	emptyDirNothingLeft(t, m, img, headers)
}

// On this machine's real kernel: with dm-crypt and dm-integrity the disk is
// formatted, written, read back and closed on release; without them the
// agent says which target is missing and leaves the disk alone.
func TestEncryptedBlockRealKernel(t *testing.T) {
	m, run, headers := cryptEnv(t, "")
	dev, img := loopDisk(t)
	s := emptyDir(dev, run)
	mounted, err := m.Add(context.Background(), "c1", []*storage.Storage{s})
	// dmsetup (not the code under test) says what the kernel has.
	targets, _ := exec.Command("dmsetup", "targets").Output()
	has := func(name string) bool {
		return bytes.Contains(targets, []byte("\n"+name+" ")) || bytes.HasPrefix(targets, []byte(name+" "))
	}
	if !has("crypt") || !has("integrity") {
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "device-mapper") {
			t.Fatalf("kernel without dm-crypt/dm-integrity: want FAILED_PRECONDITION naming device-mapper, got %v", err)
		}
		emptyDirNothingLeft(t, m, img, headers)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(mounted[0].Path, "data")
	want := bytes.Repeat([]byte("secret"), 10000)
	if err := os.WriteFile(f, want, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back: %v", err)
	}
	if ents, _ := os.ReadDir(headers); len(ents) != 0 {
		t.Errorf("key material left in %s while mounted: %v", headers, names(ents))
	}
	if err := m.Release(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("secret")) || bytes.HasPrefix(data, []byte("LUKS\xba\xbe")) {
		t.Errorf("plaintext or a LUKS header on the host's disk")
	}
}

// The trusted_store volume (Kata docs/how-to/how-to-pull-images-in-guest-
// with-kata.md:269, devicePath /dev/trusted_store) gets the same encryption;
// a guest that cannot encrypt refuses and leaves the disk alone.
func TestTrustedStoreRefusals(t *testing.T) {
	m, _, headers := cryptEnv(t, filepath.Join(t.TempDir(), "no-control"))
	dev, img := loopDisk(t)
	dir := filepath.Join(t.TempDir(), "image")
	_, err := m.MountTrustedStore(context.Background(), dev, dir)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "device-mapper") {
		t.Fatalf("want FAILED_PRECONDITION naming device-mapper, got %v", err)
	}
	if _, err := m.MountTrustedStore(context.Background(), "/dev/null", dir); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("/dev/null: want INVALID_ARGUMENT, got %v", err)
	}
	if mi, ok := mountAt(t, dir); ok {
		t.Fatalf("mounted %+v", mi)
	}
	emptyDirNothingLeft(t, m, img, headers)
}
