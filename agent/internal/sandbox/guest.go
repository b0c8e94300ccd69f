package sandbox

import (
	"context"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/internal/system"
)

// adaptToGuest makes a new container's spec true of this guest: the host's
// device numbers in it become the guest's, and labels of security modules
// the guest kernel does not run are dropped.
func (s *Sandbox) adaptToGuest(ctx context.Context, spec *specs.Spec, r ContainerRequest) error {
	if len(r.Devices) > 0 {
		if r.Guest == nil {
			return errdefs.ErrNotImplemented.WithMessage("devices are not supported: guest management is not configured in this agent")
		}
		nodes, err := r.Guest.ResolveDevices(ctx, r.Devices)
		if err != nil {
			return err
		}
		devs := make([]container.GuestDevice, 0, len(nodes))
		for _, n := range nodes {
			devs = append(devs, container.GuestDevice{ContainerPath: n.ContainerPath, Type: n.Type, Major: n.Major, Minor: n.Minor, Path: n.Path})
		}
		if err := container.RewriteDevices(spec, devs); err != nil {
			return err
		}
	}
	s.stripLSMLabels(r.Guest, r.ID, &spec.Process.ApparmorProfile, &spec.Process.SelinuxLabel, &spec.Linux.MountLabel)
	return nil
}

// stripLSMLabels clears the labels of modules the guest kernel does not
// run, as Kata's guest ignores them: containerd on an AppArmor host names
// its profile in every spec, and libcontainer would fail every container
// trying to apply it.
func (s *Sandbox) stripLSMLabels(g *system.Guest, cid string, apparmor, selinux, mount *string) {
	if g == nil {
		return
	}
	if dropped := g.LSMs().Strip(apparmor, selinux, mount); len(dropped) > 0 && s.o.Log != nil {
		s.o.Log.Debug("security labels dropped: the guest kernel does not run their module", "container", cid, "labels", dropped)
	}
}
