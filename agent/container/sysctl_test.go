package container

import (
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/configs/validate"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// inFreshNetns runs fn on an OS thread of its own that has left for a new
// network namespace, so the sysctls it writes never reach the machine's. The
// goroutine ends still locked, which makes the Go runtime discard the thread.
func inFreshNetns(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare net: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// podSandboxConfig is the libcontainer config of containerd 2.x's pause
// container after the runtime dropped its network namespace: the two net.*
// sysctls containerd adds to every pod (internal/cri/server/podsandbox/
// sandbox_run_linux.go) and an IPC one that stays with libcontainer.
func podSandboxConfig(t *testing.T) *configs.Config {
	t.Helper()
	s := &specs.Spec{
		Root:    &specs.Root{Path: t.TempDir()},
		Process: &specs.Process{Args: []string{"/pause"}, Cwd: "/"},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.PIDNamespace}},
			Sysctl: map[string]string{
				"net.ipv4.ip_unprivileged_port_start": "0",
				"net.ipv4.ping_group_range":           "0 2147483647",
				"kernel.shmmni":                       "4096",
			},
		},
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: "sysctl-test", Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Kata's validator accepts net.* sysctls because the guest's network
// namespace is the pod's (rustjail/src/validator.rs, fn sysctl): they are
// written there and libcontainer, which would call that namespace the host's
// and refuse the pause container, no longer sees them.
func TestNetSysctlsGoToTheGuestNetns(t *testing.T) {
	testenv.RequiresRoot(t)
	cfg := podSandboxConfig(t)
	if err := validate.Validate(cfg); err == nil || !strings.Contains(err.Error(), "host network namespace") {
		t.Fatalf("libcontainer accepts net.* sysctls without a netns (%v); the test no longer shows the problem", err)
	}
	inFreshNetns(t, func() {
		if err := applyNetSysctls(cfg); err != nil {
			t.Errorf("applyNetSysctls: %v", err)
			return
		}
		for key, want := range map[string]string{"ipv4/ip_unprivileged_port_start": "0", "ipv4/ping_group_range": "0\t2147483647"} {
			got, err := os.ReadFile("/proc/sys/net/" + key)
			if err != nil || strings.TrimSpace(string(got)) != want {
				t.Errorf("%s = %q (%v), want %q", key, got, err, want)
			}
		}
	})
	if _, ok := cfg.Sysctl["kernel.shmmni"]; !ok || len(cfg.Sysctl) != 1 {
		t.Errorf("sysctls left for libcontainer: %v, want only kernel.shmmni", cfg.Sysctl)
	}
	if err := validate.Validate(cfg); err != nil {
		t.Errorf("libcontainer still refuses the config: %v", err)
	}
}

// Keys and values from the host are checked before anything is written:
// nothing outside /proc/sys/net, no unknown key, no oversized value. A
// refusal writes none of the request's sysctls.
func TestNetSysctlsBadInput(t *testing.T) {
	testenv.RequiresRoot(t)
	for name, sysctl := range map[string]map[string]string{
		"dot-dot":        {"net.ipv4..ip_forward": "1"},
		"slash":          {"net.ipv4/../../kernel/hostname": "x"},
		"parent":         {"net.ipv4.conf.all.rp_filter": "1", "net...kernel": "1"},
		"unknown":        {"net.ipv4.no_such_knob": "1"},
		"empty-key":      {"net.": "1"},
		"nul":            {"net.ipv4.ip_forward": "1\x00"},
		"huge":           {"net.ipv4.ip_forward": strings.Repeat("1", maxSysctlValue+1)},
		"one-bad-of-two": {"net.ipv4.ip_unprivileged_port_start": "77", "net.ipv4.bogus": "1"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := &configs.Config{Sysctl: sysctl}
			inFreshNetns(t, func() {
				err := applyNetSysctls(cfg)
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("got %v, want INVALID_ARGUMENT", err)
				}
				if got, _ := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); strings.TrimSpace(string(got)) == "77" {
					t.Error("a sysctl of a refused request was written")
				}
			})
		})
	}
}

// sysctlComponent is a hand-written form of the pattern below (kept out of
// package initialisation); the two must accept the same strings.
func FuzzSysctlComponent(f *testing.F) {
	for _, s := range []string{"ipv4", "rp_filter", "eth-0", "", "a.b", "x/y", "é", strings.Repeat("a", 64), strings.Repeat("a", 65)} {
		f.Add(s)
	}
	pattern := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := sysctlComponent(s), pattern.MatchString(s); got != want {
			t.Fatalf("sysctlComponent(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}

func FuzzNetSysctlPath(f *testing.F) {
	for _, s := range []string{"net.ipv4.ip_forward", "net..x", "net.ipv4/../x", "net.", "kernel.x", "net.ipv4.conf.eth0.rp_filter"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		p, err := netSysctlPath(key)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/proc/sys/net/") || strings.Contains(p, "/../") || strings.Contains(p, "//") || strings.HasSuffix(p, "/..") {
			t.Fatalf("%q maps to %q", key, p)
		}
	})
}
