package convert

import (
	"fmt"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/internal/errs"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Seccomp bounds. The kernel hands a filter at most six syscall arguments
// and errno values end at 4095 (MAX_ERRNO); anything beyond would only fail
// later, inside the container's init, with a far less useful message.
const (
	maxSeccompArgs  = 6
	maxSeccompNames = 4096
	maxErrno        = 4095
)

// seccompFromProto converts the runtime's seccomp profile field by field.
// Action, architecture, flag and operator names are checked by libcontainer
// when the config is built; the numeric bounds are checked here.
func seccompFromProto(p *agentpb.LinuxSeccomp) (*specs.LinuxSeccomp, error) {
	if len(p.Syscalls) > MaxSyscall {
		return nil, tooMany("seccomp syscall rules", len(p.Syscalls), MaxSyscall)
	}
	s := &specs.LinuxSeccomp{DefaultAction: specs.LinuxSeccompAction(p.DefaultAction)}
	for _, a := range p.Architectures {
		s.Architectures = append(s.Architectures, specs.Arch(a))
	}
	for _, f := range p.Flags {
		s.Flags = append(s.Flags, specs.LinuxSeccompFlag(f))
	}
	for i, sc := range p.Syscalls {
		if sc == nil {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "seccomp syscall rule %d is null", i)
		}
		rule, err := syscallRule(i, sc)
		if err != nil {
			return nil, err
		}
		s.Syscalls = append(s.Syscalls, rule)
	}
	return s, nil
}

func syscallRule(i int, sc *agentpb.LinuxSyscall) (specs.LinuxSyscall, error) {
	bad := func(format string, a ...any) (specs.LinuxSyscall, error) {
		return specs.LinuxSyscall{}, errs.Newf(errdefs.ErrInvalidArgument, "seccomp syscall rule %d: %s", i, fmt.Sprintf(format, a...))
	}
	if len(sc.Names) > maxSeccompNames {
		return bad("%d syscall names, more than the %d allowed", len(sc.Names), maxSeccompNames)
	}
	if len(sc.Args) > maxSeccompArgs {
		return bad("%d argument conditions, more than the %d a syscall has", len(sc.Args), maxSeccompArgs)
	}
	rule := specs.LinuxSyscall{Names: append([]string(nil), sc.Names...), Action: specs.LinuxSeccompAction(sc.Action)}
	if e, ok := sc.ErrnoRet.(*agentpb.LinuxSyscall_Errnoret); ok {
		if e.Errnoret > maxErrno {
			return bad("errno %d is above %d", e.Errnoret, maxErrno)
		}
		v := uint(e.Errnoret)
		rule.ErrnoRet = &v
	}
	for j, a := range sc.Args {
		if a == nil {
			return bad("argument condition %d is null", j)
		}
		if a.Index >= maxSeccompArgs {
			return bad("argument index %d, syscalls have %d", a.Index, maxSeccompArgs)
		}
		rule.Args = append(rule.Args, specs.LinuxSeccompArg{
			Index: uint(a.Index), Value: a.Value, ValueTwo: a.ValueTwo, Op: specs.LinuxSeccompOperator(a.Op),
		})
	}
	return rule, nil
}
