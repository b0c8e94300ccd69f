package storage_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// mountInfo is one line of /proc/self/mountinfo, reduced to what tests check.
type mountInfo struct {
	point, fstype, source, opts, superOpts string
}

func mounts(t *testing.T) []mountInfo {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []mountInfo
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 3 {
			t.Fatalf("bad mountinfo line %q", line)
		}
		out = append(out, mountInfo{point: unescape(f[4]), opts: f[5], fstype: g[0], source: g[1], superOpts: g[2]})
	}
	return out
}

func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// mountsUnder lists the mount points under dir.
func mountsUnder(t *testing.T, dir string) []mountInfo {
	var out []mountInfo
	for _, m := range mounts(t) {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m)
		}
	}
	return out
}

func mountAt(t *testing.T, p string) (mountInfo, bool) {
	var found mountInfo
	ok := false
	for _, m := range mounts(t) {
		if m.point == p {
			found, ok = m, true // the last one is the visible one
		}
	}
	return found, ok
}

// env is a storage manager over a fresh run directory; when the test ends
// nothing may be mounted under it any more.
func newEnv(t *testing.T) (*storage.Manager, string) {
	t.Helper()
	testenv.RequiresRoot(t)
	run := filepath.Join(t.TempDir(), "kata")
	m, err := storage.NewDefault(storage.Options{KataRunDir: run})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if left := mountsUnder(t, run); len(left) > 0 {
			t.Errorf("mounts left under the run dir: %v", left)
			for i := len(left) - 1; i >= 0; i-- {
				_ = unix.Unmount(left[i].point, unix.MNT_DETACH)
			}
		}
	})
	return m, run
}

func TestEphemeralTmpfsAndShm(t *testing.T) {
	m, run := newEnv(t)
	ctx := context.Background()
	shm := filepath.Join(run, "sandbox", "shm")
	vol := filepath.Join(run, "sandbox", "ephemeral", "cache")
	_, err := m.Add(ctx, "", []*storage.Storage{
		{Driver: "ephemeral", Source: "shm", Fstype: "tmpfs", MountPoint: shm, Options: []string{"noexec", "nosuid", "nodev", "mode=1777", "size=67108864"}},
		{Driver: "ephemeral", Source: "tmpfs", MountPoint: vol, Options: []string{"fsgid=1234"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mi, ok := mountAt(t, shm)
	if !ok || mi.fstype != "tmpfs" || mi.source != "shm" {
		t.Fatalf("shm mount: %+v %v", mi, ok)
	}
	for _, want := range []string{"nosuid", "nodev", "noexec"} {
		if !strings.Contains(mi.opts, want) {
			t.Errorf("shm mount options %q lack %s", mi.opts, want)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(shm, &st); err != nil || st.Mode&0o7777 != 0o1777 {
		t.Errorf("shm mode %o: %v", st.Mode&0o7777, err)
	}
	if !strings.Contains(mi.superOpts, "size=65536k") {
		t.Errorf("shm super options %q lack the size", mi.superOpts)
	}
	if err := unix.Stat(vol, &st); err != nil {
		t.Fatal(err)
	}
	if st.Gid != 1234 || st.Mode&unix.S_ISGID == 0 {
		t.Errorf("fsgid volume: gid %d mode %o", st.Gid, st.Mode)
	}
	if err := m.Release(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(shm); !os.IsNotExist(err) {
		t.Errorf("mount point the driver created is still there: %v", err)
	}
}

func TestSharedMountIsRefcounted(t *testing.T) {
	m, run := newEnv(t)
	ctx := context.Background()
	mp := filepath.Join(run, "sandbox", "ephemeral", "shared")
	s := &storage.Storage{Driver: "ephemeral", Fstype: "tmpfs", Source: "tmpfs", MountPoint: mp}
	for _, owner := range []string{"c1", "c2"} {
		if _, err := m.Add(ctx, owner, []*storage.Storage{s}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(mountsUnder(t, mp)); n != 1 {
		t.Fatalf("%d mounts for a storage shared by two containers, want 1", n)
	}
	if err := m.Release(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := mountAt(t, mp); !ok {
		t.Fatal("unmounted while c2 still uses it")
	}
	if err := m.Release(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	if _, ok := mountAt(t, mp); ok {
		t.Fatal("still mounted after the last release")
	}
}

func TestRollbackOnFailure(t *testing.T) {
	m, run := newEnv(t)
	ctx := context.Background()
	first := filepath.Join(run, "sandbox", "ephemeral", "a")
	_, err := m.Add(ctx, "c1", []*storage.Storage{
		{Driver: "ephemeral", Fstype: "tmpfs", Source: "tmpfs", MountPoint: first},
		{Driver: "ephemeral", Fstype: "tmpfs", Source: "tmpfs", MountPoint: filepath.Join(run, "b"), Options: []string{"size=lots"}},
	})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad size option: %v, want INVALID_ARGUMENT", err)
	}
	if _, ok := mountAt(t, first); ok {
		t.Fatal("first storage still mounted after the second failed")
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Errorf("first mount point left behind: %v", err)
	}
	if len(m.MountPoints()) != 0 {
		t.Errorf("manager still holds %v", m.MountPoints())
	}
}

func TestOverlay(t *testing.T) {
	m, run := newEnv(t)
	ctx := context.Background()
	lower1, lower2 := filepath.Join(run, "layers", "1"), filepath.Join(run, "layers", "2")
	for i, d := range []string{lower1, lower2} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), []byte{byte('1' + i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mp := filepath.Join(run, "c1", "rootfs")
	upper, work := filepath.Join(run, "c1", "upper"), filepath.Join(run, "c1", "work")
	_, err := m.Add(ctx, "c1", []*storage.Storage{{
		Driver: "overlayfs", Source: "overlay", Fstype: "overlay", MountPoint: mp,
		Options: []string{"lowerdir=" + lower1 + ":" + lower2, "upperdir=" + upper, "workdir=" + work},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(mp, "f"))
	if err != nil || string(got) != "1" {
		t.Fatalf("top layer file: %q %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(mp, "new"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
		t.Fatalf("write did not reach the upper dir: %v", err)
	}
	if mi, _ := mountAt(t, mp); mi.fstype != "overlay" {
		t.Fatalf("mount at %s is %q", mp, mi.fstype)
	}
	if err := m.Release(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(upper); !os.IsNotExist(err) {
		t.Errorf("upper dir the driver created is still there: %v", err)
	}
	if _, err := os.Stat(lower1); err != nil {
		t.Errorf("lower layer lost: %v", err)
	}
}

func TestWritableOverlayForContainer(t *testing.T) {
	m, run := newEnv(t)
	lower := filepath.Join(run, "layers", "base")
	if err := os.MkdirAll(lower, 0o755); err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(run, "c2", "rootfs")
	_, err := m.Add(context.Background(), "c2", []*storage.Storage{{
		Driver: "overlayfs", Fstype: "overlay", MountPoint: mp,
		Options: []string{"lowerdir=" + lower, "io.katacontainers.fs-opt.overlay-rw"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	mi, _ := mountAt(t, mp)
	if !strings.Contains(mi.superOpts, "upperdir="+filepath.Join(run, "c2", "upper")) {
		t.Errorf("overlay-rw upper not under the container dir: %q", mi.superOpts)
	}
	if err := m.Release(context.Background(), "c2"); err != nil {
		t.Fatal(err)
	}
}

func TestBindDirAndFile(t *testing.T) {
	m, run := newEnv(t)
	ctx := context.Background()
	srcDir := filepath.Join(run, "shared", "watchable", "cfg")
	if err := os.MkdirAll(srcDir, 0o755); err != nil {
		t.Fatal(err)
	}
	srcFile := filepath.Join(srcDir, "token")
	if err := os.WriteFile(srcFile, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	dirMP := filepath.Join(run, "c1", "mounts", "cfg")
	fileMP := filepath.Join(run, "c1", "mounts", "token")
	_, err := m.Add(ctx, "c1", []*storage.Storage{
		{Driver: "watchable-bind", Source: srcDir, MountPoint: dirMP, Options: []string{"ro"}},
		{Driver: "watchable-bind", Source: srcFile, MountPoint: fileMP, FSGroup: &storage.FSGroup{GroupID: 777}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dirMP, "token")); string(got) != "secret" {
		t.Errorf("bound dir content %q", got)
	}
	if err := os.WriteFile(filepath.Join(dirMP, "x"), nil, 0o644); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("write into a ro bind: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(fileMP, &st); err != nil || st.Gid != 777 || st.Mode&0o060 != 0o060 {
		t.Errorf("fs_group on the bound file: gid %d mode %o err %v", st.Gid, st.Mode, err)
	}
	if err := m.Release(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fileMP); !os.IsNotExist(err) {
		t.Errorf("file mount point left behind: %v", err)
	}
	if got, _ := os.ReadFile(srcFile); string(got) != "secret" {
		t.Errorf("bind source lost: %q", got)
	}
}

func TestLocal(t *testing.T) {
	m, run := newEnv(t)
	mp := filepath.Join(run, "sandbox", "local", "data")
	_, err := m.Add(context.Background(), "c1", []*storage.Storage{{Driver: "local", Source: "local", MountPoint: mp, Options: []string{"mode=0750", "fsgid=42"}}})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(mp, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o2750 || st.Gid != 42 {
		t.Errorf("local dir mode %o gid %d, want 2750 and 42", st.Mode&0o7777, st.Gid)
	}
	if err := os.WriteFile(filepath.Join(mp, "kept"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Release(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	// An emptyDir outlives a container restart.
	if _, err := os.Stat(filepath.Join(mp, "kept")); err != nil {
		t.Errorf("local volume content lost on release: %v", err)
	}
}

// A real block device (a loop device over an image file) through the blk
// driver, formatted by the driver with create_filesystem.
func TestBlockDeviceWithCreateFilesystem(t *testing.T) {
	m, run := newEnv(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	mp := filepath.Join(run, "sandbox", "storage", "vol")
	_, err = m.Add(context.Background(), "c1", []*storage.Storage{{
		Driver: "blk", Source: dev, Fstype: "ext4", MountPoint: mp, DriverOptions: []string{"create_filesystem"}, Options: []string{"nodev"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if mi, _ := mountAt(t, mp); mi.fstype != "ext4" || mi.source != dev {
		t.Fatalf("block mount %+v", mi)
	}
	if err := m.Release(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
}

func TestBadStorages(t *testing.T) {
	m, run := newEnv(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(run, "escape")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(run, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A file bind's mount point that exists already must be a regular file:
	// opening a device node to check it would run the driver's open.
	devNode := filepath.Join(run, "devnode")
	if err := unix.Mknod(devNode, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		owner string
		s     *storage.Storage
		check func(error) bool
	}{
		{"unknown driver", "c1", &storage.Storage{Driver: "nfs", MountPoint: run + "/x"}, errdefs.IsInvalidArgument},
		{"null storage", "c1", nil, errdefs.IsInvalidArgument},
		{"outside prefix", "c1", &storage.Storage{Driver: "ephemeral", MountPoint: "/etc/evil"}, errdefs.IsPermissionDenied},
		{"dot-dot", "c1", &storage.Storage{Driver: "ephemeral", MountPoint: run + "/../evil"}, errdefs.IsInvalidArgument},
		{"relative", "c1", &storage.Storage{Driver: "ephemeral", MountPoint: "kata/x"}, errdefs.IsInvalidArgument},
		{"empty mount point", "c1", &storage.Storage{Driver: "ephemeral"}, errdefs.IsInvalidArgument},
		{"the root itself", "c1", &storage.Storage{Driver: "ephemeral", MountPoint: run}, errdefs.IsPermissionDenied},
		{"symlink escape", "c1", &storage.Storage{Driver: "ephemeral", MountPoint: run + "/escape/x"}, errdefs.IsPermissionDenied},
		{"through a file", "c1", &storage.Storage{Driver: "ephemeral", MountPoint: file + "/x"}, errdefs.IsInvalidArgument},
		{"ephemeral ext4", "c1", &storage.Storage{Driver: "ephemeral", Fstype: "ext4", Source: "/dev/sda", MountPoint: run + "/e"}, errdefs.IsInvalidArgument},
		{"bad mode", "c1", &storage.Storage{Driver: "local", MountPoint: run + "/l", Options: []string{"mode=999"}}, errdefs.IsInvalidArgument},
		{"remount", "c1", &storage.Storage{Driver: "ephemeral", MountPoint: run + "/r", Options: []string{"remount"}}, errdefs.IsInvalidArgument},
		{"overlay lower outside", "c1", &storage.Storage{Driver: "overlayfs", MountPoint: run + "/o", Options: []string{"lowerdir=/etc"}}, errdefs.IsPermissionDenied},
		{"overlay lower through symlink", "c1", &storage.Storage{Driver: "overlayfs", MountPoint: run + "/o", Options: []string{"lowerdir=" + run + "/escape"}}, errdefs.IsPermissionDenied},
		{"overlay without lower", "c1", &storage.Storage{Driver: "overlayfs", MountPoint: run + "/o", Options: []string{"upperdir=" + run + "/u"}}, errdefs.IsInvalidArgument},
		{"overlay-rw without container", "", &storage.Storage{Driver: "overlayfs", MountPoint: run + "/o", Options: []string{"lowerdir=" + run + "/layers", "io.katacontainers.fs-opt.overlay-rw"}}, errdefs.IsInvalidArgument},
		{"bind outside", "c1", &storage.Storage{Driver: "watchable-bind", Source: "/etc/shadow", MountPoint: run + "/b"}, errdefs.IsPermissionDenied},
		{"file bind onto a device node", "c1", &storage.Storage{Driver: "watchable-bind", Source: file, MountPoint: devNode}, errdefs.IsInvalidArgument},
		{"bind missing", "c1", &storage.Storage{Driver: "watchable-bind", Source: run + "/none", MountPoint: run + "/b"}, errdefs.IsInvalidArgument},
		{"blk not a device", "c1", &storage.Storage{Driver: "blk", Source: "/dev/null", Fstype: "ext4", MountPoint: run + "/d"}, errdefs.IsInvalidArgument},
		{"blk bad pci path", "c1", &storage.Storage{Driver: "blk", Source: "zz/01", Fstype: "ext4", MountPoint: run + "/d"}, errdefs.IsInvalidArgument},
		{"blk encrypted", "c1", &storage.Storage{Driver: "blk", Source: "/dev/vda", Fstype: "ext4", MountPoint: run + "/d", DriverOptions: []string{"encryption_key=ephemeral"}}, errdefs.IsInvalidArgument},
		{"scsi bad address", "c1", &storage.Storage{Driver: "scsi", Source: "0", Fstype: "ext4", MountPoint: run + "/d"}, errdefs.IsInvalidArgument},
		{"nvdimm not /dev", "c1", &storage.Storage{Driver: "nvdimm", Source: "pmem0", Fstype: "ext4", MountPoint: run + "/d"}, errdefs.IsInvalidArgument},
		{"virtio-fs no tag", "c1", &storage.Storage{Driver: "virtio-fs", Fstype: "virtiofs", MountPoint: run + "/v"}, errdefs.IsInvalidArgument},
	}
	before, _ := os.ReadDir(run)
	for _, tc := range cases {
		_, err := m.Add(context.Background(), tc.owner, []*storage.Storage{tc.s})
		if err == nil || !tc.check(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if len(m.MountPoints()) != 0 {
		t.Errorf("manager holds %v after failed requests", m.MountPoints())
	}
	after, _ := os.ReadDir(run)
	if len(after) != len(before) {
		t.Errorf("bad requests left entries in the run dir: %v → %v", names(before), names(after))
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("something was written through the symlink: %v", names(ents))
	}
}

func names(es []os.DirEntry) []string {
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}

// The sandbox share the guest mounted at boot is left alone; any other
// virtio-fs tag needs a device this machine does not have (VM test).
func TestVirtioFSPremountedShare(t *testing.T) {
	m, run := newEnv(t)
	mp := filepath.Join(run, "shared")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("kataShared", mp, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mp, unix.MNT_DETACH)
	_, err := m.Add(context.Background(), "", []*storage.Storage{{Driver: "virtio-fs", Source: "kataShared", Fstype: "virtiofs", MountPoint: mp}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Release(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := mountAt(t, mp); !ok {
		t.Fatal("releasing the premounted share unmounted it")
	}
	_, err = m.Add(context.Background(), "", []*storage.Storage{{Driver: "virtio-fs", Source: "no-such-tag", Fstype: "virtiofs", MountPoint: filepath.Join(run, "vfs")}})
	if err == nil {
		t.Fatal("mounted a virtio-fs tag that does not exist")
	}
	if err := unix.Unmount(mp, 0); err != nil {
		t.Fatal(err)
	}
}
