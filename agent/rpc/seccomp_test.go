package rpc_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/runc/libcontainer/seccomp"
	"google.golang.org/grpc/codes"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// nativeArches is the profile's architecture list for this machine, as the
// Kata runtime passes it from a Kubernetes RuntimeDefault-like profile.
func nativeArches() []string {
	switch runtime.GOARCH {
	case "amd64":
		return []string{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}
	case "arm64":
		return []string{"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"}
	}
	return nil
}

// denyProfile allows everything except mkdir/mkdirat (EPERM) and kill with
// SIGUSR1 (EPERM), the latter exercising argument conditions.
func denyProfile() *agentpb.LinuxSeccomp {
	eperm := &agentpb.LinuxSyscall_Errnoret{Errnoret: 1}
	return &agentpb.LinuxSeccomp{
		DefaultAction: "SCMP_ACT_ALLOW",
		Architectures: nativeArches(),
		Flags:         []string{"SECCOMP_FILTER_FLAG_LOG"},
		Syscalls: []*agentpb.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: "SCMP_ACT_ERRNO", ErrnoRet: eperm},
			{Names: []string{"kill"}, Action: "SCMP_ACT_ERRNO", ErrnoRet: eperm, Args: []*agentpb.LinuxSeccompArg{
				{Index: 1, Value: 10, Op: "SCMP_CMP_EQ"}, // SIGUSR1
			}},
		},
	}
}

// The script's exit statuses are printed so stdout says what each syscall
// did; stderr carries the error text. kill -0 must stay allowed: the rule
// matches on the signal argument only. The pid namespace's init ignores an
// unhandled SIGUSR1, so without the filter "kill -USR1 1" succeeds quietly.
const seccompScript = `mkdir /tmp/x; echo mkdir=$?; kill -USR1 1; echo usr1=$?; kill -0 1; echo zero=$?`

// TestSeccomp runs the same script with and without a profile and, in a
// build without the seccomp tag, checks that the agent says so instead.
func TestSeccomp(t *testing.T) {
	a := startAgent(t, "")
	ctx := ctxT(t)
	d := must(t)(a.GetGuestDetails(ctx, &agentpb.GuestDetailsRequest{})).(*agentpb.GuestDetailsResponse)
	if got := d.GetAgentDetails().GetSupportsSeccomp(); got != seccomp.Enabled {
		t.Fatalf("supports_seccomp = %v in a build where seccomp.Enabled = %v", got, seccomp.Enabled)
	}

	s := spec(a.rootfs(t, "filtered"), "sh", "-c", seccompScript)
	s.Linux.Seccomp = denyProfile()
	if !seccomp.Enabled {
		_, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "filtered", OCI: s})
		wantCode(t, "seccomp profile without seccomp support", err, codes.FailedPrecondition, "without seccomp support")
		t.Log("built without -tags seccomp: only the refusal was checked (make test builds with it)")
		return
	}
	a.runContainer(t, "filtered", s)
	out, errOut := a.readAll(t, "filtered", "", false), a.readAll(t, "filtered", "", true)
	if st := a.wait(t, "filtered", ""); st != 0 {
		t.Errorf("filtered container exit %d", st)
	}
	if out != "mkdir=1\nusr1=1\nzero=0\n" || strings.Count(errOut, "Operation not permitted") != 2 {
		t.Errorf("with the profile: stdout %q stderr %q", out, errOut)
	}
	a.remove(t, "filtered")

	a.runContainer(t, "open", spec(a.rootfs(t, "open"), "sh", "-c", seccompScript))
	out, errOut = a.readAll(t, "open", "", false), a.readAll(t, "open", "", true)
	if st := a.wait(t, "open", ""); st != 0 {
		t.Errorf("unfiltered container exit %d", st)
	}
	if out != "mkdir=0\nusr1=0\nzero=0\n" || errOut != "" {
		t.Errorf("without a profile: stdout %q stderr %q", out, errOut)
	}
	a.remove(t, "open")
}

// A profile libcontainer cannot build is refused before anything starts.
func TestSeccompBadProfile(t *testing.T) {
	a := startAgent(t, "")
	ctx := ctxT(t)
	root := a.rootfs(t, "bad")
	cases := []struct {
		name string
		edit func(*agentpb.LinuxSeccomp)
		text string
		// lib: only libcontainer's seccomp code knows the name, so a build
		// without it refuses the profile as a whole.
		lib bool
	}{
		{"unknown action", func(p *agentpb.LinuxSeccomp) { p.DefaultAction = "SCMP_ACT_MAYBE" }, "action", true},
		{"unknown arch", func(p *agentpb.LinuxSeccomp) { p.Architectures = []string{"SCMP_ARCH_PDP11"} }, "arch", true},
		{"unknown flag", func(p *agentpb.LinuxSeccomp) { p.Flags = []string{"SECCOMP_FILTER_FLAG_NOPE"} }, "flag", true},
		{"unknown operator", func(p *agentpb.LinuxSeccomp) { p.Syscalls[1].Args[0].Op = "SCMP_CMP_ALMOST" }, "operator", true},
		{"argument index", func(p *agentpb.LinuxSeccomp) { p.Syscalls[1].Args[0].Index = 6 }, "argument index 6", false},
		{"errno", func(p *agentpb.LinuxSeccomp) {
			p.Syscalls[0].ErrnoRet = &agentpb.LinuxSyscall_Errnoret{Errnoret: 70000}
		}, "errno 70000", false},
		// A nil rule reaches the agent as an empty one (proto has no null
		// list elements); its empty action is refused.
		{"empty rule", func(p *agentpb.LinuxSeccomp) { p.Syscalls = append(p.Syscalls, nil) }, "action", true},
	}
	for _, c := range cases {
		p := denyProfile()
		c.edit(p)
		s := spec(root, "true")
		s.Linux.Seccomp = p
		_, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "bad", OCI: s})
		code, text := codes.InvalidArgument, c.text
		if c.lib && !seccomp.Enabled {
			code, text = codes.FailedPrecondition, "without seccomp support"
		}
		wantCode(t, c.name, err, code, text)
	}
	// Nothing was left behind: the id is free again.
	a.runContainer(t, "bad", spec(root, "true"))
	if st := a.wait(t, "bad", ""); st != 0 {
		t.Errorf("exit %d", st)
	}
}
