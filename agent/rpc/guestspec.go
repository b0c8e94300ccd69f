package rpc

import (
	"context"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// guestSpec returns the request's spec adjusted to this guest: the
// request's devices replace the host's device numbers with the guest's, and
// labels of security modules the guest kernel lacks are dropped. The
// request itself is left as the policy saw it.
func (s *Service) guestSpec(ctx context.Context, r *agentpb.CreateContainerRequest) (*agentpb.Spec, error) {
	if r.OCI == nil {
		return nil, nil // SpecFromProto refuses it with its own message.
	}
	oci := proto.CloneOf(r.OCI)
	if len(r.Devices) > 0 {
		if s.system.Guest == nil {
			return nil, errdefs.ErrNotImplemented.WithMessage("devices are not supported: guest management is not configured in this agent")
		}
		nodes, err := s.system.Guest.ResolveDevices(ctx, r.Devices)
		if err != nil {
			return nil, err
		}
		devs := make([]container.GuestDevice, 0, len(nodes))
		for _, n := range nodes {
			devs = append(devs, container.GuestDevice{ContainerPath: n.ContainerPath, Type: n.Type, Major: n.Major, Minor: n.Minor, Path: n.Path})
		}
		if err := container.RewriteDevices(oci, devs); err != nil {
			return nil, err
		}
	}
	var apparmor, selinux, mount *string
	if oci.Process != nil {
		apparmor, selinux = &oci.Process.ApparmorProfile, &oci.Process.SelinuxLabel
	}
	if oci.Linux != nil {
		mount = &oci.Linux.MountLabel
	}
	s.stripLSMLabels(r.ContainerId, apparmor, selinux, mount)
	return oci, nil
}

// stripLSMLabels clears the labels of modules the guest kernel does not
// run, as Kata's guest ignores them: containerd on an AppArmor host names
// its profile in every spec, and libcontainer would fail every container
// trying to apply it.
func (s *Service) stripLSMLabels(cid string, apparmor, selinux, mount *string) {
	if s.system.Guest == nil {
		return
	}
	if dropped := s.system.Guest.LSMs().Strip(apparmor, selinux, mount); len(dropped) > 0 && s.log != nil {
		s.log.Debug("security labels dropped: the guest kernel does not run their module", "container", cid, "labels", dropped)
	}
}
