package conformance

import (
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// SpecOption adjusts the OCI spec (or adds a storage) of a container.
type SpecOption struct {
	apply   func(*agentpb.Spec)
	storage *agentpb.Storage
}

// WithMemoryLimit sets the container's memory limit in bytes.
func WithMemoryLimit(bytes int64) SpecOption {
	return SpecOption{apply: func(s *agentpb.Spec) {
		if s.Linux.Resources == nil {
			s.Linux.Resources = &agentpb.LinuxResources{}
		}
		s.Linux.Resources.Memory = &agentpb.LinuxMemory{Limit: bytes}
	}}
}

// WithStorage sends a storage with the container and bind-mounts its mount
// point at dest, as the runtime does for a volume.
func WithStorage(st *agentpb.Storage, dest string) SpecOption {
	return SpecOption{storage: st, apply: func(s *agentpb.Spec) {
		s.Mounts = append(s.Mounts, &agentpb.Mount{Destination: dest, Source: st.MountPoint, Type: "bind", Options: []string{"rbind", "rw"}})
	}}
}

// WithTerminal gives the container's init a terminal.
func WithTerminal() SpecOption {
	return SpecOption{apply: func(s *agentpb.Spec) { s.Process.Terminal = true }}
}

// defaultCaps is the capability set container engines grant by default.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// process is a root process as containerd's default spec has it
// (containerd pkg/oci/spec.go populateDefaultUnixSpec ~l.168-187).
func (h *Harness) process(args []string) *agentpb.Process {
	return &agentpb.Process{
		Args: args,
		Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "HOSTNAME=conformance"},
		Cwd:  "/",
		User: &agentpb.User{UID: 0, GID: 0},
		Capabilities: &agentpb.LinuxCapabilities{
			Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps,
		},
		Rlimits:         []*agentpb.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		NoNewPrivileges: true,
	}
}

// podSysctls are the sysctls containerd 2.x adds to every pod sandbox that
// has its own network (enable_unprivileged_ports/icmp default on;
// containerd internal/cri/server/podsandbox/sandbox_run_linux.go ~l.177-190).
var podSysctls = map[string]string{
	"net.ipv4.ip_unprivileged_port_start": "0",
	"net.ipv4.ping_group_range":           "0 2147483647",
}

// Spec builds the OCI spec the runtime would send for a busybox container:
// containerd's default spec (pkg/oci/spec.go populateDefaultUnixSpec,
// pkg/oci/mounts.go defaultMounts; CRI drops /run: internal/cri/server/
// container_create.go oci.WithoutRunMount ~l.692) minus what the runtime
// strips: hooks, the network, cgroup and time namespaces
// (virtcontainers/kata_agent.go constrainGRPCSpec ~l.1118-1129) and the PID
// namespace, sent as sandbox_pidns instead (kata_agent.go handlePidNamespace
// ~l.2168; runtime-rs virt_container/src/container_manager/container.rs
// amend_spec ~l.820-839). The pause container also gets containerd's pod
// sysctls.
func (h *Harness) Spec(cid string, args []string, opts ...SpecOption) *agentpb.Spec {
	s := &agentpb.Spec{
		Version:  "1.1.0",
		Process:  h.process(args),
		Root:     &agentpb.Root{Path: h.RootfsPath(cid)},
		Hostname: "conformance",
		Mounts: []*agentpb.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Annotations: map[string]string{
			"io.kubernetes.cri.container-type": "container",
			"io.kubernetes.cri.sandbox-id":     h.sandboxID,
			"io.kubernetes.cri.container-name": cid,
		},
		Linux: &agentpb.Linux{
			CgroupsPath: "/kubepods/conformance/" + cid,
			Namespaces:  []*agentpb.LinuxNamespace{{Type: "ipc"}, {Type: "uts"}, {Type: "mount"}},
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
			Resources:     &agentpb.LinuxResources{Devices: []*agentpb.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
		},
	}
	if h.shmPath != "" {
		// The runtime points the pod's /dev/shm at the sandbox's shm
		// storage (kata_agent.go handleShm).
		for _, m := range s.Mounts {
			if m.Destination == "/dev/shm" {
				m.Type, m.Source, m.Options = "bind", h.shmPath, []string{"rbind"}
			}
		}
	}
	if cid == h.sandboxID {
		s.Annotations["io.kubernetes.cri.container-type"] = "sandbox"
		s.Linux.Sysctl = map[string]string{}
		for k, v := range podSysctls {
			s.Linux.Sysctl[k] = v
		}
	}
	for _, o := range opts {
		if o.apply != nil {
			o.apply(s)
		}
	}
	return s
}

// withMount adds one mount to the spec.
func withMount(m *agentpb.Mount) SpecOption {
	return SpecOption{apply: func(s *agentpb.Spec) { s.Mounts = append(s.Mounts, m) }}
}
