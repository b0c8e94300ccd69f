package convert

import (
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

func TestSeccompFromProto(t *testing.T) {
	p := &agentpb.LinuxSeccomp{
		DefaultAction: "SCMP_ACT_ERRNO",
		Architectures: []string{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"},
		Flags:         []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"},
		Syscalls: []*agentpb.LinuxSyscall{
			{Names: []string{"read", "write"}, Action: "SCMP_ACT_ALLOW"},
			{Names: []string{"mkdir"}, Action: "SCMP_ACT_ERRNO", ErrnoRet: &agentpb.LinuxSyscall_Errnoret{Errnoret: 0}},
			{Names: []string{"personality"}, Action: "SCMP_ACT_ALLOW", Args: []*agentpb.LinuxSeccompArg{
				{Index: 0, Value: 0xffffffff, Op: "SCMP_CMP_EQ"},
				{Index: 5, Value: 0xff, ValueTwo: 0x08, Op: "SCMP_CMP_MASKED_EQ"},
			}},
		},
	}
	zero := uint(0)
	want := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86},
		Flags:         []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write"}, Action: specs.ActAllow},
			// errno 0 set explicitly differs from errno unset (nil).
			{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: &zero},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo},
				{Index: 5, Value: 0xff, ValueTwo: 0x08, Op: specs.OpMaskedEqual},
			}},
		},
	}
	got, err := seccompFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	// The result is what libcontainer builds filters from.
	if seccomp.Enabled {
		c, err := specconv.SetupSeccomp(got)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Syscalls) != 4 || len(c.Syscalls[3].Args) != 2 || c.Syscalls[2].ErrnoRet == nil || len(c.Architectures) != 2 || len(c.Flags) != 2 {
			t.Fatalf("libcontainer config %+v", c)
		}
	}
}

func TestSeccompFromProtoBounds(t *testing.T) {
	rule := func(edit func(*agentpb.LinuxSyscall)) *agentpb.LinuxSeccomp {
		r := &agentpb.LinuxSyscall{Names: []string{"kill"}, Action: "SCMP_ACT_ERRNO"}
		edit(r)
		return &agentpb.LinuxSeccomp{DefaultAction: "SCMP_ACT_ALLOW", Syscalls: []*agentpb.LinuxSyscall{r}}
	}
	cases := []struct {
		name string
		p    *agentpb.LinuxSeccomp
		want string
	}{
		{"null rule", &agentpb.LinuxSeccomp{Syscalls: []*agentpb.LinuxSyscall{nil}}, "rule 0 is null"},
		{"null arg", rule(func(r *agentpb.LinuxSyscall) { r.Args = []*agentpb.LinuxSeccompArg{nil} }), "condition 0 is null"},
		{"arg index", rule(func(r *agentpb.LinuxSyscall) { r.Args = []*agentpb.LinuxSeccompArg{{Index: 1 << 40}} }), "argument index"},
		{"too many args", rule(func(r *agentpb.LinuxSyscall) { r.Args = make([]*agentpb.LinuxSeccompArg, 7) }), "7 argument conditions"},
		{"errno", rule(func(r *agentpb.LinuxSyscall) { r.ErrnoRet = &agentpb.LinuxSyscall_Errnoret{Errnoret: 4096} }), "errno 4096"},
		{"names", rule(func(r *agentpb.LinuxSyscall) { r.Names = make([]string, maxSeccompNames+1) }), "syscall names"},
		{"rules", &agentpb.LinuxSeccomp{Syscalls: make([]*agentpb.LinuxSyscall, MaxSyscall+1)}, "seccomp syscall rules"},
	}
	for _, c := range cases {
		_, err := seccompFromProto(c.p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := seccompFromProto(rule(func(r *agentpb.LinuxSyscall) {
		r.ErrnoRet = &agentpb.LinuxSyscall_Errnoret{Errnoret: maxErrno}
		r.Args = []*agentpb.LinuxSeccompArg{{Index: 5}}
	})); err != nil {
		t.Errorf("limits themselves: %v", err)
	}
}

// FuzzSeccompFromProto: any profile from the wire converts or is refused
// with an error, and what converts stays inside the kernel's bounds and
// never makes libcontainer panic.
func FuzzSeccompFromProto(f *testing.F) {
	seed, _ := proto.Marshal(&agentpb.LinuxSeccomp{DefaultAction: "SCMP_ACT_ALLOW", Architectures: []string{"SCMP_ARCH_X86_64"},
		Syscalls: []*agentpb.LinuxSyscall{{Names: []string{"kill"}, Action: "SCMP_ACT_ERRNO",
			ErrnoRet: &agentpb.LinuxSyscall_Errnoret{Errnoret: 1}, Args: []*agentpb.LinuxSeccompArg{{Index: 1, Value: 10, Op: "SCMP_CMP_EQ"}}}}})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p agentpb.LinuxSeccomp
		if proto.Unmarshal(data, &p) != nil {
			return
		}
		s, err := seccompFromProto(&p)
		if err != nil {
			return
		}
		if len(s.Syscalls) != len(p.Syscalls) {
			t.Fatalf("%d rules from %d", len(s.Syscalls), len(p.Syscalls))
		}
		for _, r := range s.Syscalls {
			if r.ErrnoRet != nil && *r.ErrnoRet > maxErrno {
				t.Fatalf("errno %d", *r.ErrnoRet)
			}
			for _, a := range r.Args {
				if a.Index >= maxSeccompArgs {
					t.Fatalf("index %d", a.Index)
				}
			}
		}
		if seccomp.Enabled {
			_, _ = specconv.SetupSeccomp(s)
		}
	})
}
