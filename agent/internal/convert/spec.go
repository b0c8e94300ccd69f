// Package convert turns the Kata agent protocol's messages into the domain
// packages' types (runtime-spec for OCI, each package's own request types)
// and the domain's answers back into messages. It is the only place that
// knows both sides, so a change to Kata's protos touches agent/rpc alone.
// Checks that exist because of the wire format (null entries, proto3
// zeros meaning "unset") are made here; the rules of the domain are not.
package convert

import (
	"os"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/internal/errs"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Bounds on list sizes from the wire. They are far above what a pod needs and
// keep one request from making the agent allocate without limit.
const (
	MaxArgs    = 4096
	MaxEnv     = 8192
	MaxMounts  = 1024
	MaxDevices = 1024
	MaxSyscall = 4096
)

// SpecFromProto converts the runtime's OCI spec for a new container into a
// runtime-spec Spec. proto3 cannot tell "unset" from zero, so zero numeric
// resources are left unset, which is how the Kata runtime means them. Hooks
// are dropped: the host must not run binaries in the guest (the Kata agent
// drops them too).
//
// Process, Root and Linux are required: a container cannot be made without
// them, and refusing here, before any storage is mounted, keeps every later
// step free of checks for them. A null entry in any list is refused rather
// than skipped, so that what runs is exactly what the request says.
func SpecFromProto(p *agentpb.Spec) (*specs.Spec, error) {
	if p == nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("OCI spec is null")
	}
	for _, missing := range []struct {
		name string
		null bool
	}{{"Process", p.Process == nil}, {"Root", p.Root == nil}, {"Linux", p.Linux == nil}} {
		if missing.null {
			return nil, errdefs.ErrInvalidArgument.WithMessage("OCI spec has no " + missing.name)
		}
	}
	s := &specs.Spec{
		Version:     p.Version,
		Hostname:    p.Hostname,
		Annotations: copyMap(p.Annotations),
	}
	if s.Version == "" {
		s.Version = specs.Version
	}
	proc, err := ProcessFromProto(p.Process)
	if err != nil {
		return nil, err
	}
	s.Process = proc
	s.Root = &specs.Root{Path: p.Root.Path, Readonly: p.Root.Readonly}
	if len(p.Mounts) > MaxMounts {
		return nil, tooMany("mounts", len(p.Mounts), MaxMounts)
	}
	for i, m := range p.Mounts {
		if m == nil {
			return nil, null("mount", i)
		}
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: m.Destination, Source: m.Source, Type: m.Type, Options: append([]string(nil), m.Options...),
		})
	}
	l, err := linuxFromProto(p.Linux)
	if err != nil {
		return nil, err
	}
	s.Linux = l
	return s, nil
}

// ProcessFromProto converts a process description (also used by ExecProcess).
func ProcessFromProto(p *agentpb.Process) (*specs.Process, error) {
	if p == nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("process is null")
	}
	if len(p.Args) > MaxArgs {
		return nil, tooMany("args", len(p.Args), MaxArgs)
	}
	if len(p.Env) > MaxEnv {
		return nil, tooMany("env", len(p.Env), MaxEnv)
	}
	proc := &specs.Process{
		Terminal:        p.Terminal,
		Args:            append([]string(nil), p.Args...),
		Env:             append([]string(nil), p.Env...),
		Cwd:             p.Cwd,
		NoNewPrivileges: p.NoNewPrivileges,
		ApparmorProfile: p.ApparmorProfile,
		SelinuxLabel:    p.SelinuxLabel,
	}
	if p.ConsoleSize != nil {
		proc.ConsoleSize = &specs.Box{Height: uint(p.ConsoleSize.Height), Width: uint(p.ConsoleSize.Width)}
	}
	if u := p.User; u != nil {
		proc.User = specs.User{UID: u.UID, GID: u.GID, AdditionalGids: append([]uint32(nil), u.AdditionalGids...), Username: u.Username}
	}
	if c := p.Capabilities; c != nil {
		proc.Capabilities = &specs.LinuxCapabilities{
			Bounding: c.Bounding, Effective: c.Effective, Inheritable: c.Inheritable, Permitted: c.Permitted, Ambient: c.Ambient,
		}
	}
	for i, r := range p.Rlimits {
		if r == nil {
			return nil, null("rlimit", i)
		}
		proc.Rlimits = append(proc.Rlimits, specs.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
	}
	if p.OOMScoreAdj != 0 {
		if p.OOMScoreAdj < -1000 || p.OOMScoreAdj > 1000 {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "OOMScoreAdj %d is outside [-1000, 1000]", p.OOMScoreAdj)
		}
		v := int(p.OOMScoreAdj)
		proc.OOMScoreAdj = &v
	}
	return proc, nil
}

func linuxFromProto(p *agentpb.Linux) (*specs.Linux, error) {
	l := &specs.Linux{
		Sysctl:            copyMap(p.Sysctl),
		CgroupsPath:       p.CgroupsPath,
		RootfsPropagation: p.RootfsPropagation,
		MaskedPaths:       append([]string(nil), p.MaskedPaths...),
		ReadonlyPaths:     append([]string(nil), p.ReadonlyPaths...),
		MountLabel:        p.MountLabel,
	}
	var err error
	if l.UIDMappings, err = idMappings("UID", p.UIDMappings); err != nil {
		return nil, err
	}
	if l.GIDMappings, err = idMappings("GID", p.GIDMappings); err != nil {
		return nil, err
	}
	for i, n := range p.Namespaces {
		if n == nil {
			return nil, null("namespace", i)
		}
		l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.LinuxNamespaceType(n.Type), Path: n.Path})
	}
	if len(p.Devices) > MaxDevices {
		return nil, tooMany("devices", len(p.Devices), MaxDevices)
	}
	for i, d := range p.Devices {
		if d == nil {
			return nil, null("device", i)
		}
		mode, uid, gid := os.FileMode(d.FileMode), d.UID, d.GID
		l.Devices = append(l.Devices, specs.LinuxDevice{
			Path: d.Path, Type: d.Type, Major: d.Major, Minor: d.Minor, FileMode: &mode, UID: &uid, GID: &gid,
		})
	}
	if p.Resources != nil {
		r, err := ResourcesFromProto(p.Resources)
		if err != nil {
			return nil, err
		}
		l.Resources = r
	}
	if p.Seccomp != nil {
		sc, err := seccompFromProto(p.Seccomp)
		if err != nil {
			return nil, err
		}
		l.Seccomp = sc
	}
	if p.IntelRdt != nil && p.IntelRdt.L3CacheSchema != "" {
		l.IntelRdt = &specs.LinuxIntelRdt{L3CacheSchema: p.IntelRdt.L3CacheSchema}
	}
	return l, nil
}

// ResourcesFromProto converts cgroup resources (also used by UpdateContainer).
func ResourcesFromProto(p *agentpb.LinuxResources) (*specs.LinuxResources, error) {
	if p == nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("resources are null")
	}
	r := &specs.LinuxResources{}
	if len(p.Devices) > MaxDevices {
		return nil, tooMany("device rules", len(p.Devices), MaxDevices)
	}
	for i, d := range p.Devices {
		if d == nil {
			return nil, null("device rule", i)
		}
		rule := specs.LinuxDeviceCgroup{Allow: d.Allow, Type: d.Type, Access: d.Access}
		// -1 is how Kata spells the "*" wildcard; it stays unset here.
		if d.Major >= 0 {
			rule.Major = ptr(d.Major)
		}
		if d.Minor >= 0 {
			rule.Minor = ptr(d.Minor)
		}
		r.Devices = append(r.Devices, rule)
	}
	if m := p.Memory; m != nil {
		r.Memory = &specs.LinuxMemory{
			Limit: nonZero(m.Limit), Reservation: nonZero(m.Reservation), Swap: nonZero(m.Swap),
			Kernel: nonZero(m.Kernel), KernelTCP: nonZero(m.KernelTCP), Swappiness: nonZero(m.Swappiness),
		}
		if m.DisableOOMKiller {
			r.Memory.DisableOOMKiller = ptr(true)
		}
	}
	if c := p.CPU; c != nil {
		r.CPU = &specs.LinuxCPU{
			Shares: nonZero(c.Shares), Quota: nonZero(c.Quota), Period: nonZero(c.Period),
			RealtimeRuntime: nonZero(c.RealtimeRuntime), RealtimePeriod: nonZero(c.RealtimePeriod),
			Cpus: c.Cpus, Mems: c.Mems,
		}
	}
	if p.Pids != nil && p.Pids.Limit != 0 {
		r.Pids = &specs.LinuxPids{Limit: ptr(p.Pids.Limit)}
	}
	if b := p.BlockIO; b != nil {
		bio, err := blockIOFromProto(b)
		if err != nil {
			return nil, err
		}
		r.BlockIO = bio
	}
	for i, h := range p.HugepageLimits {
		if h == nil {
			return nil, null("hugepage limit", i)
		}
		r.HugepageLimits = append(r.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.Pagesize, Limit: h.Limit})
	}
	if n := p.Network; n != nil {
		r.Network = &specs.LinuxNetwork{ClassID: nonZero(n.ClassID)}
		for i, pr := range n.Priorities {
			if pr == nil {
				return nil, null("network priority", i)
			}
			r.Network.Priorities = append(r.Network.Priorities, specs.LinuxInterfacePriority{Name: pr.Name, Priority: pr.Priority})
		}
	}
	return r, nil
}

func blockIOFromProto(b *agentpb.LinuxBlockIO) (*specs.LinuxBlockIO, error) {
	weight := func(v uint32) (*uint16, error) {
		if v == 0 {
			return nil, nil
		}
		if v > 1000 {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "blkio weight %d is above 1000", v)
		}
		w := uint16(v)
		return &w, nil
	}
	out := &specs.LinuxBlockIO{}
	var err error
	if out.Weight, err = weight(b.Weight); err != nil {
		return nil, err
	}
	if out.LeafWeight, err = weight(b.LeafWeight); err != nil {
		return nil, err
	}
	for i, d := range b.WeightDevice {
		if d == nil {
			return nil, null("blkio weight device", i)
		}
		wd := specs.LinuxWeightDevice{}
		wd.Major, wd.Minor = d.Major, d.Minor
		if wd.Weight, err = weight(d.Weight); err != nil {
			return nil, err
		}
		if wd.LeafWeight, err = weight(d.LeafWeight); err != nil {
			return nil, err
		}
		out.WeightDevice = append(out.WeightDevice, wd)
	}
	throttle := func(what string, in []*agentpb.LinuxThrottleDevice) ([]specs.LinuxThrottleDevice, error) {
		var t []specs.LinuxThrottleDevice
		for i, d := range in {
			if d == nil {
				return nil, null("blkio "+what+" device", i)
			}
			td := specs.LinuxThrottleDevice{Rate: d.Rate}
			td.Major, td.Minor = d.Major, d.Minor
			t = append(t, td)
		}
		return t, nil
	}
	if out.ThrottleReadBpsDevice, err = throttle("read bps", b.ThrottleReadBpsDevice); err != nil {
		return nil, err
	}
	if out.ThrottleWriteBpsDevice, err = throttle("write bps", b.ThrottleWriteBpsDevice); err != nil {
		return nil, err
	}
	if out.ThrottleReadIOPSDevice, err = throttle("read iops", b.ThrottleReadIOPSDevice); err != nil {
		return nil, err
	}
	if out.ThrottleWriteIOPSDevice, err = throttle("write iops", b.ThrottleWriteIOPSDevice); err != nil {
		return nil, err
	}
	return out, nil
}

func idMappings(kind string, in []*agentpb.LinuxIDMapping) ([]specs.LinuxIDMapping, error) {
	var out []specs.LinuxIDMapping
	for i, m := range in {
		if m == nil {
			return nil, null(kind+" mapping", i)
		}
		out = append(out, specs.LinuxIDMapping{HostID: m.HostID, ContainerID: m.ContainerID, Size: m.Size})
	}
	return out, nil
}

// null is the error for a null entry in a list of messages. The wire cannot
// encode one, but a caller building requests in Go can.
func null(what string, i int) error {
	return errs.Newf(errdefs.ErrInvalidArgument, "%s %d is null", what, i)
}

func tooMany(what string, n, max int) error {
	return errs.Newf(errdefs.ErrInvalidArgument, "%d %s, more than the %d allowed", n, what, max)
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func nonZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}
