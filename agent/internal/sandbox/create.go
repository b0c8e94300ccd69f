package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/agent/internal/system"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// MaxStorages bounds the storages of one CreateContainer.
const MaxStorages = 256

// ContainerRequest is what CreateContainer carries.
type ContainerRequest struct {
	ID         string
	ExecID     string
	StringUser *container.StringUser
	Storages   []*storage.Storage
	Spec       *specs.Spec
	// Devices are the host's devices for the container; Guest finds them
	// and the spec's linux.devices entries are pointed at them.
	Devices      []*system.Device
	SandboxPidns bool
	// Guest is the guest the container runs in (see adaptToGuest); nil
	// refuses devices and keeps every security label.
	Guest *system.Guest
}

// CreateContainer mounts the container's storages, prepares its spec and
// creates it with its init waiting for Start. On any error nothing of it is
// left: storages released, no cgroup, no state directory.
func (s *Sandbox) CreateContainer(ctx context.Context, r ContainerRequest) (_ *container.Container, err error) {
	if err := safepath.ValidateID("container", r.ID); err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		if err := safepath.ValidateID("exec", r.ExecID); err != nil {
			return nil, err
		}
	}
	if len(r.Storages) > MaxStorages {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "%d storages, more than %d", len(r.Storages), MaxStorages)
	}
	spec := r.Spec
	if spec == nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("OCI spec is null")
	}
	if spec.Process == nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("OCI spec has no process")
	}
	if spec.Linux == nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("OCI spec has no Linux")
	}
	if err := s.adaptToGuest(ctx, spec, r); err != nil {
		return nil, err
	}
	if err := s.reserve(r.ID); err != nil {
		return nil, err
	}
	defer s.unreserve(r.ID)

	if err := s.mountTrustedStore(ctx, spec); err != nil {
		return nil, fmt.Errorf("container %s: %w", r.ID, err)
	}
	mounted, err := s.o.Storage.Add(ctx, r.ID, r.Storages)
	if err != nil {
		return nil, err
	}
	// Until the container is registered, every way out — an error or a
	// panic unwinding to the server's recovery — gives the mounts back.
	created := false
	defer func() {
		if !created {
			err = errors.Join(err, s.o.Storage.Release(context.WithoutCancel(ctx), r.ID))
		}
	}()
	if err := s.prepareSpec(spec, mounted, r); err != nil {
		return nil, err
	}
	defer func() {
		if !created {
			s.mu.Lock()
			delete(s.held, r.ID)
			s.mu.Unlock()
		}
	}()
	run(s.hooks.checked)
	// From here on libcontainer and the unsealing read the sources through
	// staging binds of what was checked (stage.go).
	staged, err := s.stageMounts(spec, r.ID)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", r.ID, err)
	}
	defer func() {
		if !created {
			err = errors.Join(err, staged.release())
		}
	}()
	defer func() {
		if !created {
			err = errors.Join(err, os.RemoveAll(s.secretsOf(r.ID)))
		}
	}()
	if err := s.unsealMounts(ctx, spec, r.ID, staged); err != nil {
		return nil, fmt.Errorf("container %s: %w", r.ID, err)
	}
	if s.o.UnsealEnv != nil {
		env, err := s.o.UnsealEnv(ctx, spec.Process.Env)
		if err != nil {
			return nil, fmt.Errorf("container %s environment: %w", r.ID, err)
		}
		spec.Process.Env = env
	}

	s.mu.Lock()
	pidNS, first := s.pidNS, len(s.containers) == 0
	ipc, uts := s.ipcNS, s.utsNS
	s.mu.Unlock()
	if r.SandboxPidns && pidNS == "" && !first {
		return nil, errdefs.ErrFailedPrecondition.WithMessage("sandbox has no shared PID namespace")
	}
	setNamespaces(spec, ipc, uts, pidNS, r.SandboxPidns)

	run(s.hooks.beforeCreate)
	c, err := container.Create(ctx, container.Options{
		ID:           r.ID,
		ExecID:       r.ExecID,
		Spec:         spec,
		StateRoot:    filepath.Join(s.o.StateDir, "containers"),
		CgroupParent: s.o.CgroupParent,
		PipeSize:     s.o.PipeSize,
		NoPivotRoot:  s.noPivotRoot,
		OnOOM:        s.onOOM,
		Log:          s.o.Log,
	})
	if err != nil {
		return nil, err
	}
	if err := s.sealOutput(ctx, c); err != nil {
		return nil, errors.Join(err, c.Destroy(context.WithoutCancel(ctx)))
	}
	s.mu.Lock()
	s.containers[r.ID] = c
	s.staged[r.ID] = staged
	if s.pidNS == "" && first {
		// Kata's rule: without a pause process, the first container's init
		// is the pod's PID namespace.
		s.pidNS = fmt.Sprintf("/proc/%d/ns/pid", c.Init().Pid())
	}
	s.mu.Unlock()
	created = true
	return c, nil
}

func (s *Sandbox) reserve(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.containers[id]; ok || s.pending[id] {
		return errs.Newf(errdefs.ErrAlreadyExists, "container %q already exists", id)
	}
	if o := s.claimedBy(id); o != "" {
		return errs.Newf(errdefs.ErrPermissionDenied, "container %s uses a path in the area of container %s", o, id)
	}
	s.pending[id] = true
	return nil
}

func (s *Sandbox) unreserve(id string) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

// prepareSpec decides the rootfs, applies a pulled image's config and the
// string user, and confines every path from the host (confine.go), then
// claims the other containers' areas those paths use.
func (s *Sandbox) prepareSpec(spec *specs.Spec, mounted []storage.Mounted, r ContainerRequest) error {
	var image *storage.Mounted
	own := make([]string, 0, len(mounted))
	for i := range mounted {
		own = append(own, mounted[i].Path)
		if mounted[i].Image != nil {
			image = &mounted[i]
		}
	}
	if image != nil {
		if spec.Root == nil {
			spec.Root = &specs.Root{}
		}
		spec.Root.Path = image.Path
		if takesImageConfig(spec) {
			if err := container.ApplyImageConfig(spec.Process, image.Image, image.Path); err != nil {
				return err
			}
		}
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return errdefs.ErrInvalidArgument.WithMessage("OCI spec has no root path")
	}
	root, err := s.confine("root path", spec.Root.Path, r.ID, own)
	if err != nil {
		return err
	}
	if rel, _ := filepath.Rel(s.runDir, s.inRunDir(spec.Root.Path)); !rootShape(rel) {
		return errs.Newf(errdefs.ErrInvalidArgument, "root path %q is not <run dir>/shared/containers/<id>/rootfs or <run dir>/<id>/rootfs", spec.Root.Path)
	}
	if st, err := os.Stat(root.resolved); err != nil || !st.IsDir() {
		return errs.Newf(errdefs.ErrInvalidArgument, "root path %q is not a directory", spec.Root.Path)
	}
	spec.Root.Path = root.resolved
	if err := container.ApplyStringUser(spec.Process, r.StringUser, root.resolved); err != nil {
		return err
	}
	if len(spec.Process.Args) == 0 {
		return errdefs.ErrInvalidArgument.WithMessage("OCI spec has no process args")
	}
	owners := root.owners
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		if !filepath.IsAbs(m.Destination) {
			return errs.Newf(errdefs.ErrInvalidArgument, "mount destination %q is not absolute", m.Destination)
		}
		if !isBind(m) {
			if err := checkVirtualMount(m); err != nil {
				return err
			}
			continue
		}
		if _, ok := guestSystemPath(m.Source); ok {
			src, err := s.confineSystem(m.Source)
			if err != nil {
				return err
			}
			m.Source = src
			continue
		}
		src, err := s.confine("mount source", m.Source, r.ID, own)
		if err != nil {
			return err
		}
		m.Source = src.resolved
		for _, o := range src.owners {
			if !slices.Contains(owners, o) {
				owners = append(owners, o)
			}
		}
	}
	// Hooks would run host-chosen binaries in the guest; Kata drops them too.
	spec.Hooks = nil
	return s.claim(r.ID, owners)
}

// containerTypeKeys are the annotations containerd and CRI-O set on a
// pod's sandbox ("sandbox") and workload ("container") specs; Kata reads
// the same two (src/agent/src/confidential_data_hub/image.rs:37
// K8S_CONTAINER_TYPE_KEYS).
var containerTypeKeys = []string{"io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"}

// takesImageConfig reports whether a guest-pulled image's config completes
// the spec. A workload's spec arrives complete — containerd merged the
// image's config into it on the host, then the pod's settings over it — and
// the policy approved it as sent, so applying the image again would undo
// what the pod set (an explicit runAsUser: 0 would run as the image's USER).
// Kata takes the process from the image only for the sandbox (image.rs:159
// get_process). A spec without a command did not come from containerd; it
// leaves the whole process to the image.
func takesImageConfig(spec *specs.Spec) bool {
	if len(spec.Process.Args) == 0 {
		return true
	}
	for _, k := range containerTypeKeys {
		if spec.Annotations[k] == "sandbox" {
			return true
		}
	}
	return false
}

// checkVirtualMount allows the file system types a spec may mount other
// than by bind: their source is a label, not a path. Anything else (overlay
// with a host-chosen lowerdir, a block file system over a guest device)
// would reach guest data no confinement of bind sources covers.
func checkVirtualMount(m *specs.Mount) error {
	switch m.Type {
	case "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "hugetlbfs":
		return nil
	}
	return errs.Newf(errdefs.ErrPermissionDenied, "mount at %q of type %q: only bind mounts and kernel file systems (proc, sysfs, tmpfs, devpts, mqueue, cgroup, hugetlbfs) are allowed", m.Destination, m.Type)
}

func isBind(m *specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// setNamespaces rewrites the spec's namespaces the way the Kata agent does:
// host-given paths are dropped (they would name guest processes the host
// cannot know), IPC and UTS join the sandbox's, the network namespace is the
// sandbox's own (no new one), and the PID namespace is new unless the
// sandbox's is to be shared.
func setNamespaces(spec *specs.Spec, ipc, uts, pidNS string, sharePid bool) {
	var out []specs.LinuxNamespace
	for _, ns := range spec.Linux.Namespaces {
		switch ns.Type {
		case specs.PIDNamespace, specs.NetworkNamespace:
			continue
		case specs.IPCNamespace:
			ns.Path = ipc
		case specs.UTSNamespace:
			ns.Path = uts
			if uts != "" {
				// The sandbox's UTS namespace already carries the pod's hostname.
				spec.Hostname = ""
			}
		default:
			ns.Path = ""
		}
		out = append(out, ns)
	}
	pid := specs.LinuxNamespace{Type: specs.PIDNamespace}
	if sharePid {
		pid.Path = pidNS
	}
	spec.Linux.Namespaces = append(out, pid)
}
