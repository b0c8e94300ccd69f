package container

import (
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// GuestDevice is a device of a CreateContainer request as found in the
// guest: the spec's linux.devices entry at ContainerPath names the host's
// device numbers and must name these instead.
type GuestDevice struct {
	ContainerPath string
	Type          string // "b" or "c"
	Major, Minor  int64
	// Path, when set, replaces the entry's path (a VFIO group's number in
	// the guest differs from the host's).
	Path string
}

// RewriteDevices points the spec's devices at the guest's device numbers,
// as Kata's add_devices and update_spec_devices do
// (src/agent/src/device/mod.rs): every entry of linux.devices a guest device
// names gets its numbers (and path), every linux.resources.devices rule for
// the host's numbers of such an entry follows it, and a rule allowing "rwm"
// on each guest device is added. A guest device no spec entry names, or two
// for one path, is an error: the spec and the device list disagree.
func RewriteDevices(s *specs.Spec, devs []GuestDevice) error {
	if len(devs) == 0 {
		return nil
	}
	if s == nil || s.Linux == nil {
		return errdefs.ErrInvalidArgument.WithMessage("devices given for a spec without a linux section")
	}
	pending := make(map[string]GuestDevice, len(devs))
	for _, d := range devs {
		if _, dup := pending[d.ContainerPath]; dup {
			return errdefs.ErrInvalidArgument.WithMessage("conflicting device updates for " + d.ContainerPath)
		}
		pending[d.ContainerPath] = d
	}
	type hostKey struct {
		typ          string
		major, minor int64
	}
	moved := map[hostKey]GuestDevice{}
	for i := range s.Linux.Devices {
		sd := &s.Linux.Devices[i]
		d, ok := pending[sd.Path]
		if !ok {
			continue
		}
		delete(pending, sd.Path)
		k := hostKey{sd.Type, sd.Major, sd.Minor}
		if _, dup := moved[k]; dup {
			return errs.Newf(errdefs.ErrInvalidArgument, "conflicting resource updates for host device %s %d:%d", sd.Type, sd.Major, sd.Minor)
		}
		moved[k] = d
		sd.Major, sd.Minor = d.Major, d.Minor
		if d.Path != "" {
			sd.Path = d.Path
		}
	}
	if len(pending) > 0 {
		missing := make([]string, 0, len(pending))
		for p := range pending {
			missing = append(missing, p)
		}
		sort.Strings(missing)
		return errdefs.ErrInvalidArgument.WithMessage("devices missing from the OCI spec's linux.devices: " + strings.Join(missing, " "))
	}
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	res := s.Linux.Resources
	for i := range res.Devices {
		r := &res.Devices[i]
		if r.Major == nil || r.Minor == nil {
			continue // wildcards name no one device
		}
		if d, ok := moved[hostKey{r.Type, *r.Major, *r.Minor}]; ok {
			r.Major, r.Minor = ptr(d.Major), ptr(d.Minor)
		}
	}
	// Added after the rewrite above, so that no added rule is mistaken for
	// a host rule whose numbers happen to equal a guest device's.
	for _, d := range devs {
		res.Devices = append(res.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: ptr(d.Major), Minor: ptr(d.Minor), Access: "rwm"})
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
