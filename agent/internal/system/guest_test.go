package system

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// fakeTree writes files (path → content) under a temp dir.
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// recorder replaces the machine-changing calls.
type recorder struct {
	tv      []unix.Timeval
	swapon  []string
	unmount []string
}

func (r *recorder) syscalls() Syscalls {
	return Syscalls{
		Settimeofday: func(tv *unix.Timeval) error { r.tv = append(r.tv, *tv); return nil },
		Swapon:       func(p string) error { r.swapon = append(r.swapon, p); return nil },
		Unmount:      func(p string, _ int) error { r.unmount = append(r.unmount, p); return nil },
	}
}

func TestDetails(t *testing.T) {
	ctx := context.Background()
	sys := fakeTree(t, map[string]string{
		"devices/system/memory/block_size_bytes": "8000000\n",
		"devices/system/memory/probe":            "",
	})
	proc := fakeTree(t, map[string]string{"self/status": "Name:\tx\nSeccomp:\t0\nSeccomp_filters:\t0\n"})
	g := New(Options{Sysfs: sys, Proc: proc, Version: "1.2.3", StorageHandlers: func() []string { return []string{"blk", "local"} }})
	r, err := g.Details(ctx, DetailsRequest{MemBlockSize: true, MemHotplugProbe: true})
	if err != nil {
		t.Fatal(err)
	}
	d := r.Agent
	if r.MemBlockSizeBytes != 0x8000000 || !r.SupportMemHotplugProbe || d.Version != "1.2.3" ||
		d.SupportsSeccomp != seccomp.Enabled || d.InitDaemon || strings.Join(d.StorageHandlers, ",") != "blk,local" {
		t.Fatalf("details: %v", r)
	}
	// Not asked: not reported.
	r, _ = g.Details(ctx, DetailsRequest{})
	if r.MemBlockSizeBytes != 0 || r.SupportMemHotplugProbe {
		t.Fatalf("unrequested fields set: %v", r)
	}
	// A kernel without hot-plug or seccomp.
	g = New(Options{Sysfs: t.TempDir(), Proc: fakeTree(t, map[string]string{"self/status": "Name:\tx\n"})})
	r, err = g.Details(ctx, DetailsRequest{MemBlockSize: true, MemHotplugProbe: true})
	if err != nil || r.MemBlockSizeBytes != 0 || r.SupportMemHotplugProbe || r.Agent.SupportsSeccomp {
		t.Fatalf("bare kernel: %v %v", r, err)
	}
	// Garbage in sysfs.
	g = New(Options{Sysfs: fakeTree(t, map[string]string{"devices/system/memory/block_size_bytes": "zz\n"})})
	if _, err := g.Details(ctx, DetailsRequest{MemBlockSize: true}); err == nil || !strings.Contains(err.Error(), "Invalid block size") {
		t.Fatalf("bad block size: %v", err)
	}
	// The real kernel this test runs on has seccomp (containers need it).
	if !New(Options{}).seccomp() {
		t.Fatal("seccomp not detected on this kernel")
	}
}

func TestOnlineCPUMem(t *testing.T) {
	ctx := context.Background()
	sys := fakeTree(t, map[string]string{
		"devices/system/cpu/online":              "0-1\n",
		"devices/system/cpu/cpu1/online":         "1\n",
		"devices/system/cpu/cpu2/online":         "0\n",
		"devices/system/cpu/cpu3/online":         "0\n",
		"devices/system/memory/memory0/online":   "1\n",
		"devices/system/memory/memory7/online":   "0\n",
		"devices/system/memory/block_size_bytes": "8000000\n",
	})
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(sys, p))
		return strings.TrimSpace(string(b))
	}
	g := New(Options{Sysfs: sys, OnlineRetries: 2, OnlineWait: time.Millisecond})
	// Enough CPUs online already: nothing is written.
	if err := g.OnlineCPUMem(ctx, &OnlineRequest{NbCPUs: 2, CPUOnly: true}); err != nil {
		t.Fatal(err)
	}
	if read("devices/system/cpu/cpu2/online") != "0" || read("devices/system/memory/memory7/online") != "0" {
		t.Fatal("onlined without need")
	}
	// One more CPU wanted: one offline CPU is onlined; the fake tree's
	// online list never changes, so the retries run out.
	err := g.OnlineCPUMem(ctx, &OnlineRequest{NbCPUs: 3})
	if err == nil || !strings.Contains(err.Error(), "failed to online 3 CPU(s)") {
		t.Fatalf("err = %v", err)
	}
	if read("devices/system/cpu/cpu2/online") != "1" {
		t.Fatal("cpu2 not onlined")
	}
	// Memory blocks.
	if err := g.OnlineCPUMem(ctx, &OnlineRequest{}); err != nil {
		t.Fatal(err)
	}
	if read("devices/system/memory/memory7/online") != "1" {
		t.Fatal("memory7 not onlined")
	}
	if err := g.OnlineCPUMem(ctx, nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("nil: %v", err)
	}
	if err := g.OnlineCPUMem(ctx, &OnlineRequest{NbCPUs: 1 << 30}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("huge nb_cpus: %v", err)
	}
	if err := g.MemHotplugByProbe(ctx, []uint64{0x100000000, 0x108000000}); err != nil {
		t.Fatal(err)
	}
	if read("devices/system/memory/probe") != "0X108000000" {
		t.Fatalf("probe = %q", read("devices/system/memory/probe"))
	}
	if err := g.MemHotplugByProbe(ctx, make([]uint64, maxProbeAddrs+1)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("too many: %v", err)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-3": 4, "0-3,5,7-8\n": 7, "": 0} {
		if n, err := ParseCPUList(in); err != nil || n != want {
			t.Errorf("%q: %d %v", in, n, err)
		}
	}
	for _, bad := range []string{"a", "3-1", "-1", "0-99999", "1,,2", "0-1-2"} {
		if _, err := ParseCPUList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestClockAndRandom(t *testing.T) {
	ctx := context.Background()
	var r recorder
	g := New(Options{Syscalls: r.syscalls(), Random: filepath.Join(t.TempDir(), "random")})
	if err := g.SetDateTime(ctx, 1700000000, 5); err != nil || len(r.tv) != 1 || r.tv[0].Sec != 1700000000 || r.tv[0].Usec != 5 {
		t.Fatalf("%v %v", err, r.tv)
	}
	for _, bad := range [][2]int64{{-1, 0}, {1, -1}, {1, 1_000_000}} {
		if err := g.SetDateTime(ctx, bad[0], bad[1]); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	if len(r.tv) != 1 {
		t.Fatal("bad times reached settimeofday")
	}
	if err := g.Reseed(ctx, nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("empty: %v", err)
	}
	if err := g.Reseed(ctx, make([]byte, MaxEntropy+1)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("oversized: %v", err)
	}
	// A regular file is not a random device: the ioctl is refused. (The
	// real /dev/random is only fed inside the VM end-to-end test.)
	if err := os.WriteFile(g.o.Random, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reseed(ctx, []byte("entropy")); err == nil || !strings.Contains(err.Error(), "add entropy") {
		t.Fatalf("regular file: %v", err)
	}
}

func TestSwapHeader(t *testing.T) {
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours")
	if err := os.WriteFile(ours, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(ours, os.O_RDWR, 0)
	if err := WriteSwapHeader(f, 1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	theirs := filepath.Join(dir, "theirs")
	if err := os.WriteFile(theirs, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkswap", "-p", "4096", theirs).CombinedOutput(); err != nil {
		t.Fatalf("mkswap: %v %s", err, out)
	}
	a, _ := os.ReadFile(ours)
	b, _ := os.ReadFile(theirs)
	// version, last_page, nr_badpages and the signature match mkswap's.
	for _, r := range [][2]int{{1024, 1036}, {4086, 4096}} {
		if !bytes.Equal(a[r[0]:r[1]], b[r[0]:r[1]]) {
			t.Errorf("bytes %v differ: %x vs %x", r, a[r[0]:r[1]], b[r[0]:r[1]])
		}
	}
	if binary.NativeEndian.Uint32(a[1028:]) != 255 {
		t.Errorf("last_page = %d", binary.NativeEndian.Uint32(a[1028:]))
	}
	// util-linux recognises it.
	if out, err := exec.Command("blkid", "-p", "-o", "value", "-s", "TYPE", ours).Output(); err == nil && strings.TrimSpace(string(out)) != "swap" {
		t.Errorf("blkid says %q", out)
	}
	if err := WriteSwapHeader(f, 4096*9, 4096); !errdefs.IsInvalidArgument(err) {
		t.Errorf("tiny area: %v", err)
	}
	if err := WriteSwapHeader(f, 1<<20, 1000); !errdefs.IsInvalidArgument(err) {
		t.Errorf("odd page: %v", err)
	}
}

func TestAddSwapPath(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var r recorder
	g := New(Options{Syscalls: r.syscalls()})
	good := filepath.Join(dir, "swapfile")
	if err := os.WriteFile(good, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.AddSwapPath(ctx, good); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(good)
	has, _ := HasSwapSignature(f, int64(os.Getpagesize()))
	f.Close()
	if !has || len(r.swapon) != 1 || r.swapon[0] != good {
		t.Fatalf("header %v, swapon %v", has, r.swapon)
	}
	small := filepath.Join(dir, "small")
	_ = os.WriteFile(small, make([]byte, 4096), 0o600)
	link := filepath.Join(dir, "link")
	_ = os.Symlink(good, link)
	fifo := filepath.Join(dir, "fifo")
	_ = unix.Mkfifo(fifo, 0o600)
	for p, class := range map[string]func(error) bool{
		"":                         errdefs.IsInvalidArgument,
		"relative/swap":            errdefs.IsInvalidArgument,
		dir + "/../x":              errdefs.IsInvalidArgument,
		small:                      errdefs.IsInvalidArgument,
		link:                       errdefs.IsInvalidArgument,
		filepath.Join(dir, "none"): errdefs.IsNotFound,
		dir:                        func(err error) bool { return err != nil },
		fifo:                       errdefs.IsInvalidArgument,
	} {
		if err := g.AddSwapPath(ctx, p); !class(err) {
			t.Errorf("%q: %v", p, err)
		}
	}
	if len(r.swapon) != 1 {
		t.Fatalf("bad paths reached swapon: %v", r.swapon)
	}
	gc := New(Options{Syscalls: r.syscalls(), Confidential: true})
	if err := gc.AddSwapPath(ctx, good); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("confidential: %v", err)
	}
}

func TestAddSwapByPCIPath(t *testing.T) {
	ctx := context.Background()
	sys := fakeTree(t, map[string]string{"devices/pci0000:00/0000:00:02.0/0000:01:03.0/virtio3/block/vdb/size": "2048"})
	dev := t.TempDir()
	vdb := filepath.Join(dev, "vdb")
	if err := os.WriteFile(vdb, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	var r recorder
	g := New(Options{Sysfs: sys, Dev: dev, HotplugTimeout: 50 * time.Millisecond, Syscalls: r.syscalls()})
	// A disk without a swap signature is not formatted by the guest.
	if err := g.AddSwap(ctx, []uint32{2, 3}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("unformatted disk: %v", err)
	}
	f, _ := os.OpenFile(vdb, os.O_RDWR, 0)
	_ = WriteSwapHeader(f, 1<<20, int64(os.Getpagesize()))
	f.Close()
	if err := g.AddSwap(ctx, []uint32{2, 3}); err != nil || len(r.swapon) != 1 || r.swapon[0] != vdb {
		t.Fatalf("%v %v", err, r.swapon)
	}
	if err := g.AddSwap(ctx, []uint32{2, 4}); !errdefs.IsNotFound(err) {
		t.Fatalf("absent disk: %v", err)
	}
	for _, bad := range [][]uint32{nil, {0x20}, make([]uint32, 9)} {
		if err := g.AddSwap(ctx, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

func TestVolumes(t *testing.T) {
	ctx := context.Background()
	g := New(Options{})
	dir := t.TempDir()
	r, err := g.VolumeStats(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes.Total == 0 || r.Inodes.Total == 0 {
		t.Fatalf("stats: %v", r)
	}
	if _, err := g.VolumeStats(ctx, "rel"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("relative: %v", err)
	}
	if _, err := g.VolumeStats(ctx, dir+"/none"); !errdefs.IsNotFound(err) {
		t.Fatalf("missing: %v", err)
	}

	shared := filepath.Join(dir, "shared")
	_ = os.MkdirAll(filepath.Join(shared, "live"), 0o755)
	mi := "1 0 0:1 / / rw - ext4 /dev/vda1 rw\n" +
		"2 1 0:2 / " + shared + "/live rw - virtiofs kataShared rw\n" +
		"3 1 0:3 / " + shared + "/gone rw - virtiofs kataShared rw\n" +
		"4 1 0:4 / /elsewhere rw - virtiofs kataShared rw\n" +
		"5 1 0:5 / " + dir + "/tmp rw shared:1 - tmpfs tmpfs rw\n"
	var rec recorder
	g = New(Options{Proc: fakeTree(t, map[string]string{"self/mountinfo": mi}), SharedDir: shared, Syscalls: rec.syscalls()})
	if err := g.RemoveStaleVirtiofsShares(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Join(rec.unmount, ",") != shared+"/gone" {
		t.Fatalf("unmounted %v", rec.unmount)
	}
	if err := g.ResizeVolume(ctx, dir+"/tmp", 1<<30); !errdefs.IsNotImplemented(err) {
		t.Fatalf("tmpfs resize: %v", err)
	}
	if err := g.ResizeVolume(ctx, dir+"/nomount", 1<<30); !errdefs.IsNotFound(err) {
		t.Fatalf("not a mount: %v", err)
	}
	if err := g.ResizeVolume(ctx, "x", 1); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("relative: %v", err)
	}
}

func TestUpdateEphemeralMounts(t *testing.T) {
	testenv.RequiresRoot(t)
	ctx := context.Background()
	run := t.TempDir()
	mp := filepath.Join(run, "sandbox", "ephemeral", "cache")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mp, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mp, unix.MNT_DETACH) })
	g := New(Options{KataRunDir: run})
	st := &storage.Storage{Driver: "ephemeral", Fstype: "tmpfs", MountPoint: mp, Options: []string{"nodev", "size=2m"}}
	if err := g.UpdateEphemeralMounts(ctx, []*storage.Storage{st}); err != nil {
		t.Fatal(err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(mp, &fs); err != nil || fs.Blocks*uint64(fs.Bsize) != 2<<20 {
		t.Fatalf("size after remount: %d %v", fs.Blocks*uint64(fs.Bsize), err)
	}
	plain := filepath.Join(run, "plain")
	_ = os.MkdirAll(plain, 0o755)
	for _, bad := range []*storage.Storage{
		nil,
		{Driver: "local", MountPoint: mp, Options: []string{"size=3m"}},
		{Driver: "ephemeral", MountPoint: "/tmp", Options: []string{"size=3m"}},
		{Driver: "ephemeral", MountPoint: plain, Options: []string{"size=3m"}},
		{Driver: "ephemeral", MountPoint: mp, Options: []string{"size=3m,uid=0"}},
		{Driver: "ephemeral", MountPoint: mp, Options: []string{"bind"}},
	} {
		if err := g.UpdateEphemeralMounts(ctx, []*storage.Storage{bad}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	_ = unix.Statfs(mp, &fs)
	if fs.Blocks*uint64(fs.Bsize) != 2<<20 {
		t.Fatal("a refused request changed the mount")
	}
}

func TestMemAgent(t *testing.T) {
	// Kata 4.1 src/agent/src/rpc.rs line 1911: ttrpc::Code::INTERNAL.
	if err := MemAgentDisabled(); !errdefs.IsInternal(err) || !strings.Contains(err.Error(), "mem-agent is disabled") {
		t.Fatal(err)
	}
}

// FuzzParsers feeds the sysfs, procfs and option parsers arbitrary text.
func FuzzParsers(f *testing.F) {
	f.Add("0-3,5\n")
	f.Add("8000000\n")
	f.Add("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n")
	f.Add("a\\040b\\")
	f.Add("size=1m,nodev")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseCPUList(s); err == nil && (n < 0 || n > MaxCPUs) {
			t.Fatalf("%q: %d cpus", s, n)
		}
		if n, err := ParseBlockSize(s); err == nil && n == 0 {
			t.Fatalf("%q: zero block size accepted", s)
		}
		if ms, err := ParseMountinfo(strings.NewReader(s)); err == nil {
			for _, m := range ms {
				if m.FSType == "" {
					t.Fatalf("%q: mount without type", s)
				}
			}
		}
		_, data, err := ParseMountOptions(strings.Split(s, ","))
		if err == nil && strings.ContainsRune(data, 0) {
			t.Fatalf("%q: NUL in mount data", s)
		}
		_ = ParseSeccompStatus(bufio.NewScanner(strings.NewReader(s)))
	})
}
