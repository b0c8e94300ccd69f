package convert

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

func TestSpecFromProto(t *testing.T) {
	p := &agentpb.Spec{
		Process: &agentpb.Process{
			Terminal: true, ConsoleSize: &agentpb.Box{Height: 24, Width: 80},
			User: &agentpb.User{UID: 1, GID: 2, AdditionalGids: []uint32{3}}, Args: []string{"a"}, Env: []string{"E=1"}, Cwd: "/w",
			Capabilities:    &agentpb.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}},
			Rlimits:         []*agentpb.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 10, Soft: 5}},
			NoNewPrivileges: true, OOMScoreAdj: -500,
		},
		Root:        &agentpb.Root{Path: "/r", Readonly: true},
		Hostname:    "h",
		Mounts:      []*agentpb.Mount{{Destination: "/d", Source: "s", Type: "bind", Options: []string{"rbind"}}},
		Hooks:       &agentpb.Hooks{Prestart: []*agentpb.Hook{{Path: "/evil"}}},
		Annotations: map[string]string{"k": "v"},
		Linux: &agentpb.Linux{
			Sysctl: map[string]string{"net.ipv4.ip_forward": "1"},
			Resources: &agentpb.LinuxResources{
				Devices:        []*agentpb.LinuxDeviceCgroup{{Allow: false, Access: "rwm", Major: -1, Minor: -1}},
				Memory:         &agentpb.LinuxMemory{Limit: 100, DisableOOMKiller: true},
				CPU:            &agentpb.LinuxCPU{Shares: 2, Quota: 1000, Period: 100000, Cpus: "0"},
				Pids:           &agentpb.LinuxPids{Limit: 5},
				BlockIO:        &agentpb.LinuxBlockIO{Weight: 10, ThrottleReadBpsDevice: []*agentpb.LinuxThrottleDevice{{Major: 8, Minor: 0, Rate: 9}}},
				HugepageLimits: []*agentpb.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4}},
			},
			Namespaces:    []*agentpb.LinuxNamespace{{Type: "pid", Path: "/proc/1/ns/pid"}},
			Devices:       []*agentpb.LinuxDevice{{Path: "/dev/x", Type: "c", Major: 1, Minor: 3, FileMode: 0o666}},
			Seccomp:       &agentpb.LinuxSeccomp{DefaultAction: "SCMP_ACT_ALLOW", Syscalls: []*agentpb.LinuxSyscall{{Names: []string{"mount"}, Action: "SCMP_ACT_ERRNO", ErrnoRet: &agentpb.LinuxSyscall_Errnoret{Errnoret: 1}}}},
			MaskedPaths:   []string{"/proc/kcore"},
			ReadonlyPaths: []string{"/proc/sys"},
		},
	}
	s, err := SpecFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case s.Hooks != nil:
		t.Error("hooks kept")
	case !s.Process.Terminal || s.Process.ConsoleSize.Width != 80 || s.Process.User.AdditionalGids[0] != 3 || *s.Process.OOMScoreAdj != -500:
		t.Errorf("process %+v", s.Process)
	case s.Root.Path != "/r" || !s.Root.Readonly || s.Hostname != "h" || s.Annotations["k"] != "v":
		t.Errorf("root/hostname/annotations %+v", s)
	case s.Mounts[0].Options[0] != "rbind":
		t.Errorf("mounts %+v", s.Mounts)
	case *s.Linux.Resources.Memory.Limit != 100 || s.Linux.Resources.Memory.Reservation != nil || !*s.Linux.Resources.Memory.DisableOOMKiller:
		t.Errorf("memory %+v", s.Linux.Resources.Memory)
	case s.Linux.Resources.Devices[0].Major != nil:
		t.Error("-1 major should be the wildcard")
	case *s.Linux.Resources.Pids.Limit != 5 || *s.Linux.Resources.BlockIO.Weight != 10 || s.Linux.Resources.BlockIO.ThrottleReadBpsDevice[0].Rate != 9:
		t.Errorf("pids/blkio %+v", s.Linux.Resources)
	case *s.Linux.Seccomp.Syscalls[0].ErrnoRet != 1 || *s.Linux.Devices[0].FileMode != 0o666:
		t.Errorf("seccomp/devices %+v", s.Linux)
	}
	// Each bad spec differs from a valid one in one place, so that it is
	// refused for that reason and not another.
	with := func(edit func(*agentpb.Spec)) *agentpb.Spec {
		s := &agentpb.Spec{Process: &agentpb.Process{Args: []string{"a"}}, Root: &agentpb.Root{Path: "/r"}, Linux: &agentpb.Linux{}}
		edit(s)
		return s
	}
	if _, err := SpecFromProto(with(func(*agentpb.Spec) {})); err != nil {
		t.Fatalf("minimal spec: %v", err)
	}
	bad := []struct {
		spec *agentpb.Spec
		want string
	}{
		{nil, "spec is null"},
		{with(func(s *agentpb.Spec) { s.Process.Args = make([]string, MaxArgs+1) }), "args"},
		{with(func(s *agentpb.Spec) { s.Process.OOMScoreAdj = 1001 }), "OOMScoreAdj"},
		{with(func(s *agentpb.Spec) { s.Mounts = []*agentpb.Mount{nil} }), "mount 0 is null"},
		{with(func(s *agentpb.Spec) { s.Linux.Namespaces = []*agentpb.LinuxNamespace{{}, nil} }), "namespace 1 is null"},
		{with(func(s *agentpb.Spec) {
			s.Linux.Resources = &agentpb.LinuxResources{BlockIO: &agentpb.LinuxBlockIO{Weight: 70000}}
		}), "blkio weight"},
	}
	for i, b := range bad {
		if _, err := SpecFromProto(b.spec); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("bad spec %d: %v, want %q", i, err, b.want)
		}
	}
}

func FuzzSpecFromProto(f *testing.F) {
	seed, _ := proto.Marshal(&agentpb.Spec{Process: &agentpb.Process{Args: []string{"a"}}, Root: &agentpb.Root{Path: "/r"},
		Linux: &agentpb.Linux{Resources: &agentpb.LinuxResources{Memory: &agentpb.LinuxMemory{Limit: 1}}}})
	f.Add(seed)
	// Specs missing whole sections, as a hostile runtime may send them.
	for _, s := range []*agentpb.Spec{{}, {Linux: &agentpb.Linux{}}, {Process: &agentpb.Process{}, Root: &agentpb.Root{}},
		{Process: &agentpb.Process{}, Root: &agentpb.Root{}, Linux: &agentpb.Linux{Resources: &agentpb.LinuxResources{BlockIO: &agentpb.LinuxBlockIO{}}, Seccomp: &agentpb.LinuxSeccomp{}}}} {
		b, _ := proto.Marshal(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p agentpb.Spec
		if proto.Unmarshal(data, &p) != nil {
			return
		}
		s, err := SpecFromProto(&p)
		if err == nil && (s.Process == nil || s.Root == nil || s.Linux == nil) {
			t.Fatalf("accepted a spec without process, root or linux")
		}
	})
}
