package generate

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// defaultSettingsJSON is the settings used when none are given; every field
// is documented in docs/policy-generate.md.
//
//go:embed settings.default.json
var defaultSettingsJSON []byte

// MaxSettingsSize bounds a settings file.
const MaxSettingsSize = 1 << 20

// Settings describe the parts of a pod's requests that come from the Kata
// runtime, containerd and the cluster rather than from the pod's YAML, and
// the mutations the owner accepts. They are data, not code, so a new
// containerd or OCI version or a new webhook is a settings change.
type Settings struct {
	// OCIVersions are the OCI.Version values the runtime may send.
	OCIVersions []string `json:"oci_versions" toml:"oci_versions"`
	// Pause describes the sandbox (pause) container.
	Pause Pause `json:"pause" toml:"pause"`
	// GuestRootfs is the Root.Path of a guest-pulled container; "$(cid)"
	// stands for the container id.
	GuestRootfs string `json:"guest_rootfs" toml:"guest_rootfs"`
	// LayerRootfs is the Root.Path, and every layer's mount point, of a
	// container on host-shared EROFS layers (runtime-rs); "$(cid)" as above.
	LayerRootfs string `json:"layer_rootfs" toml:"layer_rootfs"`
	// PinLayers builds every image layer as the node's EROFS snapshotter
	// does and pins its dm-verity root hash (as --pin-layers does).
	PinLayers bool `json:"pin_layers" toml:"pin_layers"`
	// SharedFile is the regex prefix of a file the runtime copies into the
	// guest (CopyFile) and bind-mounts: volume files, /etc/hosts, ...
	SharedFile string `json:"shared_file" toml:"shared_file"`
	// EphemeralDir is the regex prefix of a memory-backed emptyDir.
	EphemeralDir string `json:"ephemeral_dir" toml:"ephemeral_dir"`
	// BlockDir is the regex prefix of a disk-backed (encrypted) emptyDir.
	BlockDir string `json:"block_dir" toml:"block_dir"`
	// DefaultCaps is the capability set containerd grants a container
	// without securityContext.capabilities.
	DefaultCaps []string `json:"default_caps" toml:"default_caps"`
	// Sysctls are the sysctls the runtime sets besides the pod's
	// securityContext.sysctls.
	Sysctls Sysctls `json:"sysctls" toml:"sysctls"`
	// Namespaces are the namespace types a workload container's request
	// carries, exactly, none with a path (containerd's less what the Kata
	// runtime strips; the agent adds the PID namespace).
	Namespaces []string `json:"namespaces" toml:"namespaces"`
	// Rlimits are the only rlimits any container may carry: none, as
	// containerd drops its defaults, unless a base_runtime_spec sets some.
	Rlimits []Rlimit `json:"rlimits" toml:"rlimits"`
	// OOMScoreAdj bounds OCI.Process.OOMScoreAdj by container type.
	OOMScoreAdj OOMScoreAdj `json:"oom_score_adj" toml:"oom_score_adj"`
	// MaskedPaths and ReadonlyPaths are containerd's defaults for an
	// unprivileged container; a request must keep all of them.
	MaskedPaths   []string `json:"masked_paths" toml:"masked_paths"`
	ReadonlyPaths []string `json:"readonly_paths" toml:"readonly_paths"`
	// Mounts every container may have (proc, dev, sysfs, /etc/hosts ...).
	Mounts []Mount `json:"mounts" toml:"mounts"`
	// Env entries every container may have ("NAME=value" regexes).
	Env []string `json:"env" toml:"env"`
	// CopyFile lists regexes of paths the runtime may copy into the guest.
	CopyFile []string `json:"copy_file" toml:"copy_file"`
	// Requests lists the request names allowed unconditionally. Requests
	// not listed here and without a rule of their own are denied.
	Requests []string `json:"requests" toml:"requests"`
	// SeccompStripped says the runtime drops every seccomp profile (Kata's
	// disable_guest_seccomp = true): a pod's RuntimeDefault then cannot be
	// required, only allowed.
	SeccompStripped bool `json:"seccomp_stripped" toml:"seccomp_stripped"`
	// ApparmorProfiles are the AppArmor profile names the runtime may
	// put on a process: none, or containerd's default on AppArmor hosts.
	ApparmorProfiles []string `json:"apparmor_profiles" toml:"apparmor_profiles"`
	// CreateSandbox is what the runtime's CreateSandbox carries besides
	// the pod's host name.
	CreateSandbox CreateSandbox `json:"create_sandbox" toml:"create_sandbox"`
	// Annotations names the CRI annotations the rules read.
	Annotations Annotations `json:"annotations" toml:"annotations"`
	// CDI says which device annotations a container may carry.
	CDI CDI `json:"cdi" toml:"cdi"`
	// PassThrough lists kinds that carry no pod and are copied unchanged.
	PassThrough []string `json:"pass_through_kinds" toml:"pass_through_kinds"`
	// Allowances are the mutations accepted for every pod.
	Allowances []Allowance `json:"allowances" toml:"allowances"`
	// Profiles are named optional allowance sets, enabled with --profile.
	Profiles map[string][]Allowance `json:"profiles" toml:"profiles"`
}

// Pause is the sandbox container as the runtime creates it: containerd's
// sandbox spec (internal/cri/server/podsandbox/sandbox_run_linux.go) after
// the Kata runtime stripped what it strips. With a shared PID namespace the
// pause is PID 1 and /proc/1/root shows its root and mounts to every
// container of the pod, so every field is pinned.
type Pause struct {
	Source string   `json:"source" toml:"source"`
	Args   []string `json:"args" toml:"args"`
	// Cwd is the pause process's working directory.
	Cwd string `json:"cwd" toml:"cwd"`
	// Env are regexes each environment entry must match.
	Env []string `json:"env" toml:"env"`
	// UID and GID the pause runs as when the pod sets no runAsUser and
	// runAsGroup: the pause image's user.
	UID int64 `json:"uid" toml:"uid"`
	GID int64 `json:"gid" toml:"gid"`
	// Passwd is the pause image's /etc/passwd, "" when it has none (the
	// upstream pause image). With runAsUser alone containerd runs the
	// pause with that uid's group from it, else gid 0.
	Passwd string `json:"passwd" toml:"passwd"`
	// Caps is the most the pause may hold, in any set.
	Caps            []string `json:"caps" toml:"caps"`
	NoNewPrivileges bool     `json:"no_new_privileges" toml:"no_new_privileges"`
	ReadonlyRoot    bool     `json:"readonly_root" toml:"readonly_root"`
	// Namespaces are the namespace types the request carries, exactly (the
	// runtime strips network and PID; the agent joins the pod's).
	Namespaces []string `json:"namespaces" toml:"namespaces"`
	// Mounts are the only mounts the pause may have.
	Mounts []Mount `json:"mounts" toml:"mounts"`
}

// Rlimit is one allowed rlimit, exactly.
type Rlimit struct {
	Type string `json:"type" toml:"type"`
	Hard uint64 `json:"hard" toml:"hard"`
	Soft uint64 `json:"soft" toml:"soft"`
}

// OOMScoreAdj are the ranges the kubelet and containerd give: the pause
// containerd's -998, a workload container -997 (Guaranteed or node
// critical) up to 1000 (BestEffort), by the pod's QoS class and the node's
// memory. Lower values would let a container outlive what the pod's QoS
// allows (-1000: never OOM-killed).
type OOMScoreAdj struct {
	Sandbox   Range `json:"sandbox" toml:"sandbox"`
	Container Range `json:"container" toml:"container"`
}

// Range is an inclusive range of integers.
type Range struct {
	Min int64 `json:"min" toml:"min"`
	Max int64 `json:"max" toml:"max"`
}

// Sysctls are the runtime's own sysctls by container type. containerd puts
// the pod's securityContext.sysctls and its defaults on the sandbox (pause)
// container only; a request may carry no other sysctl.
type Sysctls struct {
	// Sandbox are the defaults on the pause container; a pod's own value
	// for the same name replaces the default, as containerd does.
	Sandbox map[string]string `json:"sandbox" toml:"sandbox"`
	// Container are sysctls every workload container may carry.
	Container map[string]string `json:"container" toml:"container"`
}

// CreateSandbox is the runtime's CreateSandbox request: its PID namespace
// flag and the storages it sets up for the sandbox (the pod's /dev/shm).
// DNS lines are the cluster's and are not checked; guest hook paths and
// kernel modules are refused.
type CreateSandbox struct {
	// SandboxPidns is the sandbox_pidns the runtime sends (the Go runtime:
	// whether the pause's PID namespace has a path, never with containerd).
	SandboxPidns bool `json:"sandbox_pidns" toml:"sandbox_pidns"`
	// Storages are the only storages allowed, each matched field by field.
	Storages []SandboxStorage `json:"storages" toml:"storages"`
}

// SandboxStorage is one allowed CreateSandbox storage: driver, source and
// fstype exactly, the mount point by regex, every option by regex.
type SandboxStorage struct {
	Driver     string `json:"driver" toml:"driver"`
	Source     string `json:"source" toml:"source"`
	Fstype     string `json:"fstype" toml:"fstype"`
	MountPoint string `json:"mount_point" toml:"mount_point"`
	Options    string `json:"options" toml:"options"`
}

// Annotations are the names of the CRI annotations the rules check.
type Annotations struct {
	ContainerType    string `json:"container_type" toml:"container_type"`
	ContainerName    string `json:"container_name" toml:"container_name"`
	SandboxName      string `json:"sandbox_name" toml:"sandbox_name"`
	SandboxNamespace string `json:"sandbox_namespace" toml:"sandbox_namespace"`
	ImageName        string `json:"image_name" toml:"image_name"`
}

// CDI describes the annotations that ask the runtime for a device
// (Container Device Interface): a container may carry them only for the
// GPUs its resources.limits ask for, as Kata's genpolicy allows them
// (genpolicy-settings.json:228-240 devices.vfio, src/policy.rs:763-801 at
// 4.1.0).
type CDI struct {
	// Prefix starts every CDI annotation key ("cdi.k8s.io/";
	// genpolicy's rules.rego:68 checks its vfio keys under it).
	Prefix string `json:"prefix" toml:"prefix"`
	// Key and Value are the regexes of one GPU's annotation
	// (genpolicy's anno_key_regex and gpu_anno_value_regex).
	Key   string `json:"key" toml:"key"`
	Value string `json:"value" toml:"value"`
	// GPUResources are the resources.limits names whose sum is the
	// number of GPUs a container gets (genpolicy's pgpu_resource_keys).
	GPUResources []string `json:"gpu_resources" toml:"gpu_resources"`
}

// Mount is one allowed mount: exact destination and type, a source regex
// ("$(shared)", "$(ephemeral)" and "$(block)" expand to the settings'
// prefixes) and its options, exactly and in order, as the runtime sends
// them: a host must not drop nosuid, nodev or noexec, nor add an option.
// A bind mount may leave Options out: it then has containerd's options
// for a CRI mount, rbind, rprivate, and ro when ReadOnly, else rw
// (internal/cri/opts/spec_linux_opts.go WithMounts, lines 154-201).
type Mount struct {
	Destination string   `json:"destination" toml:"destination"`
	Type        string   `json:"type" toml:"type"`
	Source      string   `json:"source" toml:"source"`
	ReadOnly    bool     `json:"read_only" toml:"read_only"`
	Options     []string `json:"options,omitempty" toml:"options,omitempty"`
}

// options are the exact options the rule allows; none for a mount that
// is not a bind and gives none (checkMount refuses it).
func (m Mount) options() []string {
	if len(m.Options) > 0 {
		return m.Options
	}
	if m.Type == "bind" {
		return bindOptions("rprivate", m.ReadOnly)
	}
	return nil
}

// bindOptions are containerd's options for a CRI mount (WithMounts):
// rbind, the propagation, then ro or rw.
func bindOptions(propagation string, readOnly bool) []string {
	mode := "rw"
	if readOnly {
		mode = "ro"
	}
	return []string{"rbind", propagation, mode}
}

// Allowance is one accepted mutation: extra env entries, extra mounts, or
// a whole injected container pinned by image digest.
type Allowance struct {
	Name        string    `json:"name" toml:"name"`
	Description string    `json:"description,omitempty" toml:"description"`
	Env         []string  `json:"env,omitempty" toml:"env"`
	Mounts      []Mount   `json:"mounts,omitempty" toml:"mounts"`
	Sidecars    []Sidecar `json:"sidecars,omitempty" toml:"sidecars"`
}

// Sidecar is a container a webhook injects. Image must be pinned by
// digest; Args and Env are exact.
type Sidecar struct {
	Name  string   `json:"name" toml:"name"`
	Image string   `json:"image" toml:"image"`
	Args  []string `json:"args" toml:"args"`
	Env   []string `json:"env,omitempty" toml:"env"`
	Init  bool     `json:"init,omitempty" toml:"init"`
	// Caps the sidecar may hold; empty means the default set.
	Caps []string `json:"caps,omitempty" toml:"caps"`
	UID  int64    `json:"uid" toml:"uid"`
}

// DefaultSettings returns the embedded defaults.
func DefaultSettings() (*Settings, error) {
	return ParseSettings(defaultSettingsJSON)
}

// ParseSettings reads settings as JSON (a document starting with "{") or
// TOML. Fields left out keep no default: a settings file is complete, start
// from `cocoonctl policy generate --print-settings`.
func ParseSettings(b []byte) (*Settings, error) {
	if len(b) > MaxSettingsSize {
		return nil, fmt.Errorf("settings: %d bytes exceeds %d", len(b), MaxSettingsSize)
	}
	var s Settings
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("settings (JSON): %w", err)
		}
	} else {
		md, err := toml.Decode(string(b), &s)
		if err != nil {
			return nil, fmt.Errorf("settings (TOML): %w", err)
		}
		if u := md.Undecoded(); len(u) > 0 {
			return nil, fmt.Errorf("settings (TOML): unknown key %s", u[0])
		}
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	return &s, nil
}

// validate rejects settings the rules could not use: bad regexes, an empty
// pause, sidecars not pinned by digest.
func (s *Settings) validate() error {
	if s.Pause.Source == "" || len(s.Pause.Args) == 0 {
		return fmt.Errorf("pause: source and args are required")
	}
	if s.Pause.Cwd == "" || len(s.Pause.Namespaces) == 0 || len(s.Pause.Mounts) == 0 {
		return fmt.Errorf("pause: cwd, namespaces and mounts are required (start from --print-settings)")
	}
	for _, e := range s.Pause.Env {
		if _, err := regexp.Compile(e); err != nil {
			return fmt.Errorf("pause.env: %w", err)
		}
	}
	for _, m := range s.Pause.Mounts {
		if err := s.checkMount(m); err != nil {
			return fmt.Errorf("pause.mounts: %w", err)
		}
	}
	if len(s.Namespaces) == 0 {
		return fmt.Errorf("namespaces: the workload containers' namespace types are required (start from --print-settings)")
	}
	for name, r := range map[string]Range{"sandbox": s.OOMScoreAdj.Sandbox, "container": s.OOMScoreAdj.Container} {
		if r.Min > r.Max || r.Min < -1000 || r.Max > 1000 || (r.Min == 0 && r.Max == 0) {
			return fmt.Errorf("oom_score_adj.%s: min %d, max %d: want -1000 <= min <= max <= 1000 (start from --print-settings)", name, r.Min, r.Max)
		}
	}
	for _, r := range s.Rlimits {
		if r.Type == "" || r.Soft > r.Hard {
			return fmt.Errorf("rlimits: %+v: a type and soft <= hard are required", r)
		}
	}
	if len(s.OCIVersions) == 0 {
		return fmt.Errorf("oci_versions: at least one version is required")
	}
	for _, st := range s.CreateSandbox.Storages {
		for _, r := range []string{st.MountPoint, st.Options} {
			if _, err := regexp.Compile(r); err != nil {
				return fmt.Errorf("create_sandbox.storages: %w", err)
			}
		}
	}
	a := s.Annotations
	for k, v := range map[string]string{"container_type": a.ContainerType, "container_name": a.ContainerName, "sandbox_name": a.SandboxName, "sandbox_namespace": a.SandboxNamespace, "image_name": a.ImageName} {
		if v == "" {
			return fmt.Errorf("annotations.%s is empty", k)
		}
	}
	// An empty prefix would make every annotation a device request.
	if s.CDI.Prefix == "" {
		return fmt.Errorf("cdi.prefix is empty (settings files from before the cdi block need it: copy it from --print-settings)")
	}
	for _, r := range []string{s.CDI.Key, s.CDI.Value} {
		if _, err := regexp.Compile(r); err != nil {
			return fmt.Errorf("cdi: %w", err)
		}
	}
	for _, p := range []string{s.SharedFile, s.EphemeralDir, s.BlockDir} {
		if _, err := regexp.Compile(p); err != nil {
			return err
		}
	}
	for _, e := range append(append([]string{}, s.Env...), s.CopyFile...) {
		if _, err := regexp.Compile(e); err != nil {
			return err
		}
	}
	for _, m := range s.Mounts {
		if err := s.checkMount(m); err != nil {
			return fmt.Errorf("mounts: %w", err)
		}
	}
	check := func(where string, al []Allowance) error {
		for _, x := range al {
			if x.Name == "" {
				return fmt.Errorf("%s: an allowance has no name", where)
			}
			for _, e := range x.Env {
				if _, err := regexp.Compile(e); err != nil {
					return fmt.Errorf("%s %s: %w", where, x.Name, err)
				}
			}
			for _, m := range x.Mounts {
				if err := s.checkMount(m); err != nil {
					return fmt.Errorf("%s %s: %w", where, x.Name, err)
				}
			}
			for _, sc := range x.Sidecars {
				if sc.Name == "" {
					return fmt.Errorf("%s %s: a sidecar has no name", where, x.Name)
				}
			}
		}
		return nil
	}
	if err := check("allowances", s.Allowances); err != nil {
		return err
	}
	for name, al := range s.Profiles {
		if err := check("profile "+name, al); err != nil {
			return err
		}
	}
	return nil
}

func (s *Settings) checkMount(m Mount) error {
	if m.Destination == "" || m.Type == "" {
		return fmt.Errorf("a mount needs destination and type")
	}
	opts := m.options()
	if len(opts) == 0 {
		return fmt.Errorf("mount %s (%s): options are required for a %s mount: the exact list the runtime sends (see --print-settings)", m.Destination, m.Type, m.Type)
	}
	if m.ReadOnly && !slices.Contains(opts, "ro") && !slices.Contains(opts, "rro") {
		return fmt.Errorf("mount %s (%s): read_only, but its options %v have no ro", m.Destination, m.Type, opts)
	}
	_, err := regexp.Compile(s.expand(m.Source))
	return err
}

// expand replaces the settings' placeholders in a source regex.
func (s *Settings) expand(src string) string {
	return strings.NewReplacer("$(shared)", s.SharedFile, "$(ephemeral)", s.EphemeralDir, "$(block)", s.BlockDir).Replace(src)
}

// digestPinned reports whether ref names its image by sha256 digest.
func digestPinned(ref string) bool {
	_, d, ok := strings.Cut(ref, "@sha256:")
	return ok && len(d) == 64 && strings.Trim(d, "0123456789abcdef") == ""
}

// Enabled returns the allowances in force: the default ones plus those of
// the named profiles. A profile's sidecar must be pinned by digest.
func (s *Settings) Enabled(profiles []string) ([]Allowance, error) {
	out := append([]Allowance{}, s.Allowances...)
	for _, p := range profiles {
		al, ok := s.Profiles[p]
		if !ok {
			return nil, fmt.Errorf("unknown profile %q", p)
		}
		for _, a := range al {
			for _, sc := range a.Sidecars {
				if !digestPinned(sc.Image) {
					return nil, fmt.Errorf("profile %s: sidecar %s: image %q is not pinned by digest (name@sha256:...); set it in your settings file", p, sc.Name, sc.Image)
				}
			}
		}
		out = append(out, al...)
	}
	for _, a := range s.Allowances {
		for _, sc := range a.Sidecars {
			if !digestPinned(sc.Image) {
				return nil, fmt.Errorf("allowance %s: sidecar %s: image %q is not pinned by digest", a.Name, sc.Name, sc.Image)
			}
		}
	}
	return out, nil
}

// DefaultSettingsText is the embedded settings file, a starting point for
// one's own.
func DefaultSettingsText() ([]byte, error) {
	return append([]byte{}, defaultSettingsJSON...), nil
}
