package sandbox

import (
	"context"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/guest"
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
	s.stripLSMLabels(r.Guest, r.ContainerID, &proc.ApparmorProfile, &proc.SelinuxLabel, nil)
	if err := container.ApplyStringUser(proc, r.StringUser, c.Rootfs()); err != nil {
		return nil, err
	}
	return c.Exec(ctx, r.ExecID, proc)
}
