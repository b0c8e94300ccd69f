package sandbox

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/guest"
	"github.com/cocoon-tee/cocoon/agent/observe"
	"github.com/cocoon-tee/cocoon/agent/safepath"
)

// ExecRequest is what ExecProcess carries.
type ExecRequest struct {
	ContainerID string
	ExecID      string
	StringUser  *container.StringUser
	Process     *specs.Process
	// Guest is the guest the process runs in; nil keeps every security label.
	Guest *guest.Guest
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
	if name, m := s.modesOf(c); m.Exec == observe.ExecGrant {
		// The policy gate verified the grant and admitted it for exactly
		// this exec; without one nothing runs (fail closed).
		a, ok := s.takeGrant(r.ContainerID, r.ExecID)
		if !ok || len(proc.Args) != 2 || proc.Args[0] != execgrant.Command || proc.Args[1] != a.token {
			return nil, errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("exec %q in container %q has no verified owner-signed grant", r.ExecID, name))
		}
		proc, su, granted = grantedProcess(c.Spec().Process, proc, a.g.Argv), nil, true
	}
	s.stripLSMLabels(r.Guest, r.ContainerID, &proc.ApparmorProfile, &proc.SelinuxLabel, nil)
	if err := container.ApplyStringUser(proc, su, c.Rootfs()); err != nil {
		return nil, err
	}
	p, err := c.Exec(ctx, r.ExecID, proc)
	if err == nil && granted {
		s.ranGrant(r.ContainerID, r.ExecID)
	}
	return p, err
}
