package e2e

import (
	"context"
	"fmt"
	"os"
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
		rec, ok := v.Console().Find("agent serving")
		if !ok {
			t.Fatal("no \"agent serving\" record on the console")
		}
		if ver.AgentVersion == "" || ver.AgentVersion != rec.Str("version") {
			t.Errorf("Version = %q, console says %q", ver.AgentVersion, rec.Str("version"))
		}
	})

	t.Run("vsock", func(t *testing.T) {
		// The only way from the host to the agent is guestprobe's relay,
		// which dials AF_VSOCK CID 1; the answer above proves the agent's
		// vsock listener. Check it is Kata's address, unchanged.
		rec, _ := v.Console().Find("agent serving")
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
	deadline := time.Now().Add(bootBound)
	for time.Now().Before(deadline) && !v.Exited() {
		if rec, ok := v.Console().Find("agent serving"); ok {
			if rec.Str("addr") != "vsock://-1:1024" {
				t.Errorf("agent serving on %q", rec.Str("addr"))
			}
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("the agent never reported serving from the initrd")
}
