package sandbox

import (
	"context"
	"crypto/ecdh"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/internal/observe"
	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/agent/internal/stream"
	"github.com/cocoon-tee/cocoon/agent/internal/system"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// ExecRequest is what ExecProcess carries.
type ExecRequest struct {
	ContainerID string
	ExecID      string
	StringUser  *container.StringUser
	Process     *specs.Process
	// Guest is the guest the process runs in; nil keeps every security label.
	Guest *system.Guest
}

// Exec starts another process in a container, as CreateContainer starts
// its init: the exec id is checked, labels of modules the guest lacks are
// dropped and the string user is resolved against the container's rootfs.
func (s *Sandbox) Exec(ctx context.Context, r ExecRequest) (*container.Process, error) {
	c, err := s.Container(r.ContainerID)
	if err != nil {
		return nil, err
	}
	if err := safepath.ValidateID("exec", r.ExecID); err != nil {
		return nil, err
	}
	proc := r.Process
	if proc == nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("process is null")
	}
	su, granted := r.StringUser, false
	var e2e *ecdh.PublicKey
	if name, m := s.modesOf(c); m.Exec == observe.ExecGrant {
		// The policy gate verified the grant and admitted it for exactly
		// this exec; without one nothing runs (fail closed).
		a, ok := s.takeGrant(r.ContainerID, r.ExecID)
		if !ok || len(proc.Args) != 2 || proc.Args[0] != execgrant.Command || proc.Args[1] != a.token {
			return nil, errs.Newf(errdefs.ErrPermissionDenied, "exec %q in container %q has no verified owner-signed grant", r.ExecID, name)
		}
		if e2e, err = a.g.ParseSealKey(); err != nil {
			return nil, errdefs.ErrInvalidArgument.WithMessage(err.Error()) // Verify checked it
		}
		if e2e != nil && proc.Terminal {
			return nil, errdefs.ErrInvalidArgument.WithMessage("the grant asks for end-to-end encrypted exec I/O, which works without a terminal: kubectl exec -i through cocoonctl exec, not -t")
		}
		proc, su, granted = grantedProcess(c.Spec().Process, proc, a.g.Argv), nil, true
	}
	s.stripLSMLabels(r.Guest, r.ContainerID, &proc.ApparmorProfile, &proc.SelinuxLabel, nil)
	if err := container.ApplyStringUser(proc, su, c.Rootfs()); err != nil {
		return nil, err
	}
	if e2e != nil {
		// The process is visible to stdio requests as soon as it is
		// registered; hold them back until its I/O is encrypted.
		release := s.holdStdio(r.ContainerID, r.ExecID)
		defer release()
	}
	p, err := c.Exec(ctx, r.ExecID, proc)
	if err != nil {
		return nil, err
	}
	if e2e != nil {
		if err := s.encryptExecIO(c, p, e2e); err != nil {
			// Never run it in the clear; its stdio was held back, so
			// nothing was read or written.
			_ = c.Signal(context.WithoutCancel(ctx), p.ExecID, unix.SIGKILL)
			p.IO.Discard(stream.Stdout)
			p.IO.Discard(stream.Stderr)
			return nil, err
		}
	}
	if granted {
		s.ranGrant(c, p)
	}
	return p, nil
}
