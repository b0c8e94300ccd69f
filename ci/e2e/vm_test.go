package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

// Bounds for a shared 2-core machine under TCG; a boot normally takes ~10 s.
const (
	bootBound     = 3 * time.Minute
	poweroffBound = 90 * time.Second
)

// The guest image is built on first use, so parser tests and fuzzing do
// not pay for it; the lock is held until the test binary exits.
var (
	buildOnce     sync.Once
	buildErr      error
	testArtifacts Artifacts
	buildLock     *os.File
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildLock != nil {
		buildLock.Close()
	}
	os.Exit(code)
}

func artifacts(t testing.TB) Artifacts {
	t.Helper()
	// go test -short is the quick tier: everything but the VM boots.
	if testing.Short() {
		t.Skip("boots a VM under TCG; not in the -short tier")
	}
	buildOnce.Do(func() {
		root, err := FindRoot()
		if err != nil {
			buildErr = err
			return
		}
		if buildLock, err = Lock(root); err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		testArtifacts, buildErr = Build(ctx, root)
		fmt.Fprintf(os.Stderr, "e2e: guest image built in %s: %v\n", time.Since(start).Round(time.Second), testArtifacts.Manifest)
	})
	if buildErr != nil {
		t.Fatalf("building the guest image: %v", buildErr)
	}
	return testArtifacts
}

// boot starts a VM and registers its teardown; on failure the console log
// stays in build/e2e/logs and its tail is printed.
func boot(t *testing.T, cfg VMConfig) *VM {
	t.Helper()
	artifacts(t)
	if cfg.Name == "" {
		cfg.Name = strings.ReplaceAll(t.Name(), "/", "_")
	}
	if cfg.Initrd == "" && cfg.Disk == "" {
		cfg.Initrd, cfg.Disk = testArtifacts.Initrd, testArtifacts.Disk
	}
	if cfg.Disk != "" {
		cfg.Extra = append([]string{testArtifacts.KernelParams}, cfg.Extra...)
	}
	v, err := Boot(context.Background(), testArtifacts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.Kill()
		if t.Failed() {
			t.Logf("console log kept at %s; last lines:\n%s", v.ConsoleLog, v.Console().Tail(40))
		}
	})
	return v
}

func connect(t *testing.T, v *VM) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootBound)
	defer cancel()
	start := time.Now()
	c, err := v.ConnectAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Logf("agent answered %s after QEMU start", time.Since(start).Round(100*time.Millisecond))
	return c
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func guestStatus(t *testing.T, v *VM) Status {
	t.Helper()
	st, err := v.Status(callCtx(t))
	if err != nil {
		t.Fatalf("guest status: %v", err)
	}
	return st
}

// consoleRecord returns the agent's console record with msg, waiting for
// it: an answer over vsock can overtake the console line the agent wrote
// before it, which the guest's serial driver may not have sent yet.
func consoleRecord(t *testing.T, v *VM, msg string) AgentRecord {
	t.Helper()
	rec, err := v.WaitRecord(callCtx(t), msg)
	if err != nil {
		t.Fatalf("console: %v", err)
	}
	return rec
}

// TestGuest boots the measured disk image the way Kata's confidential
// configuration does and walks the agent through what it supports.
func TestGuest(t *testing.T) {
	v := boot(t, VMConfig{})
	c := connect(t, v)

	t.Run("health", func(t *testing.T) {
		ver, err := c.Health.Version(callCtx(t), &agentpb.CheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		rec := consoleRecord(t, v, "agent serving")
		if ver.AgentVersion == "" || ver.AgentVersion != rec.Str("version") {
			t.Errorf("Version = %q, console says %q", ver.AgentVersion, rec.Str("version"))
		}
	})

	t.Run("vsock", func(t *testing.T) {
		// The only way from the host to the agent is guestprobe's relay,
		// which dials AF_VSOCK CID 1; the answer above proves the agent's
		// vsock listener. Check it is Kata's address, unchanged.
		rec := consoleRecord(t, v, "agent serving")
		if got := rec.Str("addr"); got != "vsock://-1:1024" {
			t.Errorf("agent listens on %q, want vsock://-1:1024", got)
		}
		st := guestStatus(t, v)
		for _, m := range []string{"vsock", "vmw_vsock_virtio_transport", "vsock_loopback"} {
			if !st.Modules[m] {
				t.Errorf("module %s not loaded", m)
			}
		}
	})

	t.Run("init", func(t *testing.T) {
		st := guestStatus(t, v)
		if st.Cmdline != "/sbin/init" {
			t.Errorf("PID 1 is %q, want the agent as /sbin/init", st.Cmdline)
		}
		root, ok := st.Mount("/")
		if !ok || root.Source != "/dev/dm-0" || root.FSType != testArtifacts.Manifest["rootfs_type"] || !strings.HasPrefix(root.Options, "ro") {
			t.Errorf("root mount = %+v, want read-only %s on the verity device", root, testArtifacts.Manifest["rootfs_type"])
		}
		want := map[string]string{"/proc": "proc", "/sys": "sysfs", "/dev": "devtmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs", "/run": "tmpfs", "/sys/fs/cgroup": "tmpfs", "/sys/fs/cgroup/unified": "cgroup2"}
		for point, fstype := range want {
			if m, ok := st.Mount(point); !ok || m.FSType != fstype {
				t.Errorf("%s: got %+v, want %s mounted by the agent", point, m, fstype)
			}
		}
		if m, ok := st.Mount("/sys/fs/cgroup/memory"); !ok || m.FSType != "cgroup" {
			t.Errorf("cgroup v1 memory hierarchy missing: %+v", m)
		}
		t.Logf("agent RSS %d KiB (anon %d, file %d; peak %d KiB) after start", st.RSSKiB, st.AnonKiB, st.FileKiB, st.HWMKiB)
	})

	t.Run("guest-details", func(t *testing.T) {
		d, err := c.Agent.GetGuestDetails(callCtx(t), &agentpb.GuestDetailsRequest{MemBlockSize: true})
		if err != nil {
			t.Fatal(err)
		}
		if d.AgentDetails == nil || d.AgentDetails.InitDaemon != true {
			t.Errorf("agent details %+v: want init_daemon true (agent is PID 1)", d.AgentDetails)
		}
		if d.MemBlockSizeBytes == 0 {
			t.Errorf("mem_block_size_bytes = 0")
		}
	})

	t.Run("destroy-sandbox-powers-off", func(t *testing.T) {
		if _, err := c.Agent.DestroySandbox(callCtx(t), &agentpb.DestroySandboxRequest{}); err != nil {
			t.Fatal(err)
		}
		// The runtime is done with the agent once the reply is in
		// (virtcontainers/kata_agent.go stopSandbox, then the VM is stopped);
		// the agent powers off when the host hangs up.
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), poweroffBound)
		defer cancel()
		if err := v.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if len(v.Console().Grep("reboot: Power down")) == 0 {
			t.Errorf("VM stopped without the kernel's power-down message")
		}
	})
}

// TestCgroupV2 boots with cgroup_no_v1=all: the agent must mount only the
// unified hierarchy.
func TestCgroupV2(t *testing.T) {
	v := boot(t, VMConfig{Extra: []string{"cgroup_no_v1=all"}})
	connect(t, v)
	st := guestStatus(t, v)
	if m, ok := st.Mount("/sys/fs/cgroup"); !ok || m.FSType != "cgroup2" {
		t.Errorf("/sys/fs/cgroup = %+v, want cgroup2", m)
	}
	for _, m := range st.Mounts {
		if m.FSType == "cgroup" {
			t.Errorf("cgroup v1 hierarchy mounted at %s", m.Point)
		}
	}
}

// TestTamperedRootRefused flips one byte of the root file system inside the
// disk image; the root hash on the command line no longer matches, so the
// boot must stop before the agent runs.
func TestTamperedRootRefused(t *testing.T) {
	disk := t.TempDir() + "/tampered.img"
	data, err := os.ReadFile(artifacts(t).Disk)
	if err != nil {
		t.Fatal(err)
	}
	// Partition 1 starts at 1 MiB; byte 1024 of it is the file system's
	// superblock, which every mount reads.
	data[1<<20+1024+16] ^= 0x01
	if err := os.WriteFile(disk, data, 0o644); err != nil {
		t.Fatal(err)
	}
	v := boot(t, VMConfig{Disk: disk, Initrd: testArtifacts.Initrd})
	ctx, cancel := context.WithTimeout(context.Background(), bootBound)
	defer cancel()
	if err := v.Wait(ctx); err != nil {
		t.Fatalf("tampered guest kept running: %v", err)
	}
	con := v.Console()
	if len(con.Grep("device-mapper: verity", "corrupted")) == 0 {
		t.Error("no dm-verity corruption message on the console")
	}
	if len(con.Grep("cocoon-initrd: FATAL")) == 0 {
		t.Error("stage-1 did not report the refused root")
	}
	if _, ok := con.Find("agent serving"); ok {
		t.Error("the agent started from a tampered root")
	}
}

// TestInitrdMode boots the whole tree as an initramfs, the agent being the
// kernel's /init, as Kata's initrd= configuration does. The stock kernel
// has no network or vsock transport without modules, so the test reads the
// console only: the agent must have mounted its file systems and be serving
// on vsock (the kernel autoloads vsock through /sbin/modprobe).
func TestInitrdMode(t *testing.T) {
	v := boot(t, VMConfig{Initrd: artifacts(t).FullInitrd, NoNet: true})
	ctx, cancel := context.WithTimeout(context.Background(), bootBound)
	defer cancel()
	rec, err := v.WaitRecord(ctx, "agent serving")
	if err != nil {
		t.Fatalf("the agent never reported serving from the initrd: %v", err)
	}
	if rec.Str("addr") != "vsock://-1:1024" {
		t.Errorf("agent serving on %q", rec.Str("addr"))
	}
}

// The console watch wakes on each append and returns a record only once its
// line is complete, however QEMU splits the writes.
func TestConsoleWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := watchConsole(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Bounds a broken watch; a working one never waits here, since each
	// wait follows a write.
	w.events.SetReadDeadline(time.Now().Add(10 * time.Second))
	appendTo := func(s string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	step := func(write string, want int) []AgentRecord {
		t.Helper()
		appendTo(write)
		if err := w.wait(); err != nil {
			t.Fatalf("wait after a write: %v", err)
		}
		recs, err := w.next()
		if err != nil || len(recs) != want {
			t.Fatalf("after %q: records %v, %v; want %d", write, recs, err, want)
		}
		return recs
	}
	if recs, err := w.next(); err != nil || len(recs) != 0 {
		t.Fatalf("empty log: %v, %v", recs, err)
	}
	step("SeaBIOS\r\n[    1.000000] {\"msg\":\"agent ser", 0)
	recs := step("ving\",\"addr\":\"vsock://-1:1024\"}\r\nplain text\n", 1)
	if recs[0].Msg() != "agent serving" || recs[0].Str("addr") != "vsock://-1:1024" {
		t.Errorf("record %v", recs[0])
	}
	step("{\"msg\":\"next\"}", 0)
	step("\n", 1)
	w.interrupt()
	if err := w.wait(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("wait after interrupt: %v", err)
	}
}

// WaitRecord returns a record however its write and the call are ordered,
// and fails once QEMU has stopped without it or the context ends.
func TestWaitRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	if err := os.WriteFile(path, []byte("{\"msg\":\"other\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v := &VM{ConsoleLog: path, exited: make(chan struct{})}
	type result struct {
		rec AgentRecord
		err error
	}
	got := make(chan result, 1)
	go func() {
		rec, err := v.WaitRecord(callCtx(t), "agent serving")
		got <- result{rec, err}
	}()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("{\"msg\":\"agent serving\",\"addr\":\"a\"}\n"); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.err != nil || r.rec.Str("addr") != "a" {
		t.Fatalf("WaitRecord: %v, %v", r.rec, r.err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.WaitRecord(ctx, "never"); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitRecord with an ended context: %v", err)
	}

	go func() {
		_, err := v.WaitRecord(callCtx(t), "never")
		got <- result{nil, err}
	}()
	close(v.exited)
	if r := <-got; r.err == nil || !strings.Contains(r.err.Error(), "VM stopped") {
		t.Errorf("WaitRecord after QEMU stopped: %v", r.err)
	}
	// A record written before QEMU stopped is still found.
	if rec, err := v.WaitRecord(callCtx(t), "agent serving"); err != nil || rec.Str("addr") != "a" {
		t.Errorf("WaitRecord on a stopped VM's log: %v, %v", rec, err)
	}
}

// FuzzConsoleWatch: following a log written in two parts, read in chunks
// of any size, finds the same records as parsing it whole. (The inotify
// side is left out: closing an inotify instance waits for the kernel's
// grace period, which would slow every run to a crawl.)
func FuzzConsoleWatch(f *testing.F) {
	f.Add([]byte("boot\r\n[ 0.1] {\"msg\":\"agent serving\",\"addr\":\"x\"}\n{\"msg\":\"b\"}"), uint(20), uint8(7))
	f.Add([]byte("\x1b[2J{\"msg\":\"a\"}\r\n\n"), uint(3), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, split uint, chunk uint8) {
		path := filepath.Join(t.TempDir(), "console.log")
		log, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer log.Close()
		r, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		w := &consoleWatch{log: r, buf: make([]byte, int(chunk)+1)}
		k := int(split % uint(len(data)+1))
		whole := append(append([]byte{}, data...), '\n')
		var recs []AgentRecord
		for _, part := range [][]byte{whole[:k], whole[k:]} {
			if _, err := log.Write(part); err != nil {
				t.Fatal(err)
			}
			got, err := w.next()
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, got...)
		}
		if want := ParseConsole(whole).Agent; !reflect.DeepEqual(recs, want) && len(recs)+len(want) > 0 {
			t.Errorf("followed %v\nparsed whole %v", recs, want)
		}
	})
}
