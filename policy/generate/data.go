package generate

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// containerData is one container entry of policy_data. Fields left nil
// (sidecars' cwd, gid, gids) are not pinned.
type containerData struct {
	Name     string   `json:"name"`
	Workload string   `json:"workload"`
	PodName  string   `json:"pod_name"`
	Image    string   `json:"image"`
	Args     []string `json:"args"`
	// ArgPatterns, only for a container whose command or args refer to
	// an env var known only by form (or by name), are one regex per word
	// of Args, "" where the word is exact; the kubelet substitutes the
	// value there.
	ArgPatterns []string `json:"arg_patterns,omitempty"`
	Env         []string `json:"env"`
	EnvNames    []string `json:"env_names"`
	EnvPatterns []string `json:"env_patterns"`
	// EnvSandbox are the env vars from the downward API's metadata.name
	// or metadata.namespace whose value the policy knows only by form,
	// by name, with "name" or "namespace": in a CreateContainer their
	// value must be the request's own sandbox name or namespace
	// annotation. Left out when none.
	EnvSandbox     map[string]string `json:"env_sandbox,omitempty"`
	Cwd            string            `json:"cwd"`
	UID            int64             `json:"uid"`
	GID            *int64            `json:"gid"`
	GIDs           []int64           `json:"gids"`
	Caps           []string          `json:"caps"`
	Privileged     bool              `json:"privileged"`
	NoNewPrivs     bool              `json:"no_new_privileges"`
	ReadonlyRoot   bool              `json:"readonly_root"`
	MaskedPaths    []string          `json:"masked_paths"`
	ReadonlyPaths  []string          `json:"readonly_paths"`
	Mounts         mountRules        `json:"mounts"`
	StorageDrivers []string          `json:"storage_drivers"`
	TTY            bool              `json:"tty"`
	SharePID       bool              `json:"share_pid"`
	// Exec are the commands of its exec probes and lifecycle hooks, the
	// only ones ExecProcess runs in it.
	Exec [][]string `json:"exec"`
	// RootHashes are the image's layers' root hashes, top (partition 1)
	// first; empty allows guest pull only.
	RootHashes []string `json:"root_hashes"`
	podSecurity
	// RootfsPropagation are the OCI.Linux.RootfsPropagation values
	// containerd may set: "" and, with a volumeMount's mountPropagation,
	// "rslave" (HostToContainer) or "rshared" (Bidirectional).
	RootfsPropagation []string `json:"rootfs_propagation"`
	// Expect are the request's fields with one value the entry allows,
	// compared in one step before the field tests (index.go, expected).
	Expect map[string]any `json:"expect"`
	// GPUs is how many devices (CDI annotations) it may ask for; left
	// out of the data when none.
	GPUs int64 `json:"gpus,omitempty"`
}

// podSecurity is what the pod's securityContext says about seccomp, user
// namespaces and SELinux, for a workload container or its pause.
type podSecurity struct {
	// Seccomp is "required" (RuntimeDefault or Localhost: a profile whose
	// default action refuses), "none" (Unconfined: no profile) or
	// "optional" (not set, as the kubelet's --seccomp-default decides, or
	// the runtime strips profiles: none, or one that refuses).
	Seccomp string `json:"seccomp"`
	// UserNS: hostUsers is false, so UID/GID mappings may be set.
	UserNS bool `json:"user_ns"`
	// SELinux is the regex of the process and mount label the
	// seLinuxOptions imply; "" allows no label.
	SELinux string `json:"selinux"`
}

// sandboxData is one workload's pause container: its pod name pattern and
// the sysctls containerd puts on it.
type sandboxData struct {
	Workload string `json:"workload"`
	PodName  string `json:"pod_name"`
	// Sysctls are the runtime's defaults with the pod's own values over
	// them: a request's sysctls must all be here, with these values.
	Sysctls map[string]string `json:"sysctls"`
	// PodSysctls are the names the pod sets, which a request may not drop.
	PodSysctls []string `json:"pod_sysctls"`
	// UID and GID are the pause's user: the pod's runAsUser and
	// runAsGroup, else the settings' pause user. With runAsUser alone the
	// GID is that uid's group in the pause image's /etc/passwd, else 0, as
	// containerd's WithUserID resolves it. GIDs are the groups it may
	// carry besides: fsGroup and supplementalGroups.
	UID  int64   `json:"uid"`
	GID  int64   `json:"gid"`
	GIDs []int64 `json:"gids"`
	// Hostname is the pod's spec.hostname; "" means the pod's name, as the
	// kubelet names the pod's host.
	Hostname string `json:"hostname"`
	// HostnameCut is set when the pod's name can be longer than 63
	// characters: the start every host name cut from it has (the
	// kubelet keeps 63 characters); CreateSandbox has no pod name to
	// compare with.
	HostnameCut string `json:"hostname_cut"`
	podSecurity
}

// pauseData is the pause container as every pod's runtime creates it. Its
// field names are containerData's where the rules share a test.
type pauseData struct {
	Source        string          `json:"source"`
	Args          []string        `json:"args"`
	Cwd           string          `json:"cwd"`
	EnvRegex      string          `json:"env_regex"`
	Caps          []string        `json:"caps"`
	Privileged    bool            `json:"privileged"`
	NoNewPrivs    bool            `json:"no_new_privileges"`
	ReadonlyRoot  bool            `json:"readonly_root"`
	MaskedPaths   []string        `json:"masked_paths"`
	ReadonlyPaths []string        `json:"readonly_paths"`
	TTY           bool            `json:"tty"`
	Namespaces    []namespaceSpec `json:"namespaces"`
	Mounts        mountRules      `json:"mounts"`
	DefaultUID    int64           `json:"-"`
	DefaultGID    int64           `json:"-"`
}

// mountRules are mount rules by destination: a request's mount is only
// tried against the rules for its destination.
type mountRules map[string][]Mount

func (r mountRules) add(m Mount) { r[m.Destination] = append(r[m.Destination], m) }

// policyData is the generated part of the policy.
type policyData struct {
	// Containers are the entries by container name, so the rules look up
	// the entries a request can match instead of trying every one.
	Containers map[string][]containerData `json:"containers"`
	// Sandboxes are the workloads' pause containers.
	Sandboxes []sandboxData `json:"sandboxes"`
	// ContainerSysctls are the sysctls any workload container may carry.
	ContainerSysctls map[string]string `json:"container_sysctls"`
	// ContainerNamespaces are a workload container's namespaces, as the
	// runtime sends them.
	ContainerNamespaces []namespaceSpec `json:"container_namespaces"`
	// Rlimits are the only rlimits a container may carry, in the request's
	// field names.
	Rlimits []rlimitData `json:"rlimits"`
	// OOMScoreAdj bounds the OOM score adjustment by container type.
	OOMScoreAdj OOMScoreAdj `json:"oom_score_adj"`
	// StorageDirs are, by driver, the mount points a volume's storage may
	// have: under the volumes' directories, never a container's rootfs.
	StorageDirs map[string]string `json:"storage_dirs"`
	Namespace   string            `json:"namespace"`
	OCIVersions []string          `json:"oci_versions"`
	Pause       pauseData         `json:"pause"`
	GuestRootfs string            `json:"guest_rootfs"`
	LayerRootfs string            `json:"layer_rootfs"`
	Annotations Annotations       `json:"annotations"`
	CDI         CDI               `json:"cdi"`
	// Mounts are the pod-wide mount rules matched by regex; ExactMounts
	// the ones with a fixed source, looked up.
	Mounts      mountRules  `json:"mounts"`
	ExactMounts exactMounts `json:"exact_mounts"`
	// Env are the pod-wide env patterns; EnvRegex is all of them in one,
	// which is what the rules match.
	Env      []string `json:"env"`
	EnvRegex string   `json:"env_regex"`
	CopyFile []string `json:"copy_file"`
	// CopyFileSymlink is where CopyFile may create a symlink: below a
	// shared file's top entry, never as the entry a mount binds.
	CopyFileSymlink string `json:"copy_file_symlink"`
	// ApparmorProfiles are the OCI.Process.ApparmorProfile values the
	// runtime may set.
	ApparmorProfiles []string `json:"apparmor_profiles"`
	// CreateSandbox is what the runtime sends in CreateSandbox besides the
	// host name.
	CreateSandbox CreateSandbox `json:"create_sandbox"`
	// NetworkRequests are the network requests the settings list in
	// requests: the rules check them (loopback, flags) instead of
	// allowing them as they come.
	NetworkRequests []string `json:"network_requests"`
	// requests are rendered as rules, not data.
	requests []string
}

// rlimitData is an allowed rlimit as the request spells it.
type rlimitData struct {
	Type string `json:"Type"`
	Hard uint64 `json:"Hard"`
	Soft uint64 `json:"Soft"`
}

// builder turns workloads into policy data.
type builder struct {
	s      *Settings
	in     *Input
	images map[string]*ImageInfo
	allow  []Allowance
	data   policyData
	// Warnings are things the owner should know: values not pinned.
	warnings []string
}

func newBuilder(s *Settings, in *Input, images map[string]*ImageInfo, allow []Allowance, namespace string) *builder {
	b := &builder{s: s, in: in, images: images, allow: allow}
	b.data = policyData{
		Namespace: namespace, OCIVersions: s.OCIVersions, Pause: newPauseData(s), GuestRootfs: s.GuestRootfs, LayerRootfs: s.LayerRootfs,
		Annotations: s.Annotations, CDI: s.CDI, Env: slices.Clone(s.Env), requests: s.Requests,
		Containers: map[string][]containerData{}, Sandboxes: []sandboxData{}, Mounts: mountRules{},
		ContainerSysctls: orEmptyMap(s.Sysctls.Container), ContainerNamespaces: namespaceSpecs(s.Namespaces),
		Rlimits: []rlimitData{}, OOMScoreAdj: s.OOMScoreAdj,
		ApparmorProfiles: orEmpty(s.ApparmorProfiles), CreateSandbox: s.CreateSandbox,
		// The mount sources the volume rules allow (mounts) are these
		// directories' entries: a storage mounts there or nowhere.
		StorageDirs: map[string]string{
			"blk": s.BlockDir + volumeName, "local": s.BlockDir + volumeName, "ephemeral": s.EphemeralDir + volumeName,
		},
	}
	b.data.NetworkRequests = []string{}
	for _, n := range s.Requests {
		if n == "UpdateInterfaceRequest" || n == "UpdateRoutesRequest" || n == "AddARPNeighborsRequest" {
			b.data.NetworkRequests = append(b.data.NetworkRequests, n)
		}
	}
	for _, r := range s.Rlimits {
		b.data.Rlimits = append(b.data.Rlimits, rlimitData{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
	}
	for _, m := range s.Mounts {
		b.data.Mounts.add(b.expandMount(m))
	}
	for _, r := range s.CopyFile {
		b.data.CopyFile = append(b.data.CopyFile, s.expand(r))
	}
	b.data.CopyFileSymlink = s.SharedFile + "[^/]+/."
	for _, a := range allow {
		b.data.Env = append(b.data.Env, a.Env...)
		for _, m := range a.Mounts {
			b.data.Mounts.add(b.expandMount(m))
		}
	}
	return b
}

// newPauseData is the settings' pause container in the rules' terms.
func newPauseData(s *Settings) pauseData {
	p := pauseData{
		Source: s.Pause.Source, Args: s.Pause.Args, Cwd: s.Pause.Cwd, EnvRegex: anyOf(s.Pause.Env),
		Caps: orEmpty(s.Pause.Caps), NoNewPrivs: s.Pause.NoNewPrivileges, ReadonlyRoot: s.Pause.ReadonlyRoot,
		MaskedPaths: orEmpty(s.MaskedPaths), ReadonlyPaths: orEmpty(s.ReadonlyPaths),
		Namespaces: namespaceSpecs(s.Pause.Namespaces), Mounts: mountRules{},
		DefaultUID: s.Pause.UID, DefaultGID: s.Pause.GID,
	}
	for _, m := range s.Pause.Mounts {
		m.Source = s.expand(m.Source)
		p.Mounts.add(m)
	}
	return p
}

func (b *builder) expandMount(m Mount) Mount {
	m.Source = b.s.expand(m.Source)
	return m
}

// build adds every container of every workload and the sidecars.
func (b *builder) build() (*policyData, error) {
	for _, w := range b.in.Workloads {
		b.sandbox(w)
		for _, c := range w.Spec.InitContainers {
			if err := b.container(w, c); err != nil {
				return nil, err
			}
		}
		for _, c := range w.Spec.Containers {
			if err := b.container(w, c); err != nil {
				return nil, err
			}
		}
		for _, a := range b.allow {
			for _, sc := range a.Sidecars {
				b.sidecar(w, sc)
			}
		}
	}
	b.data.Mounts, b.data.ExactMounts = splitMounts(b.data.Mounts)
	b.data.EnvRegex = anyOf(b.data.Env)
	return &b.data, nil
}

func (b *builder) sidecar(w *Workload, sc Sidecar) {
	caps := sc.Caps
	if len(caps) == 0 {
		caps = b.s.DefaultCaps
	}
	b.addContainer(containerData{
		Name: sc.Name, Workload: w.Kind + "/" + w.Name + " sidecar", PodName: w.PodName,
		Image: sc.Image, Args: orEmpty(sc.Args), Env: orEmpty(sc.Env), EnvNames: []string{}, EnvPatterns: []string{},
		UID: sc.UID, Caps: caps, MaskedPaths: b.s.MaskedPaths, ReadonlyPaths: b.s.ReadonlyPaths,
		Mounts: mountRules{}, StorageDrivers: []string{}, SharePID: shareProcessNamespace(w), RootHashes: []string{},
		podSecurity: b.podSecurity(w, nil), RootfsPropagation: []string{""}, Exec: [][]string{},
	})
}

// sandbox adds w's pause container: the runtime's default sysctls, then
// the pod's securityContext.sysctls over them, as containerd builds the
// sandbox spec.
func (b *builder) sandbox(w *Workload) {
	d := sandboxData{Workload: w.Kind + "/" + w.Name, PodName: w.PodName, Sysctls: maps.Clone(orEmptyMap(b.s.Sysctls.Sandbox)), PodSysctls: []string{},
		UID: b.data.Pause.DefaultUID, GID: b.data.Pause.DefaultGID, GIDs: []int64{}, Hostname: w.Spec.Hostname,
		HostnameCut: hostnameCut(w), podSecurity: b.podSecurity(w, nil)}
	if psc := w.Spec.SecurityContext; psc != nil {
		for _, sc := range psc.Sysctls {
			name := sysctlName(sc.Name)
			d.Sysctls[name] = sc.Value
			d.PodSysctls = append(d.PodSysctls, name)
		}
		// containerd runs the pause as the pod's runAsUser:runAsGroup
		// (sandboxContainerSpecOpts); with a uid alone WithUserID takes
		// that uid's group from the pause image's /etc/passwd, and 0 when
		// it has none or no such user.
		if psc.RunAsUser != nil {
			d.UID, d.GID = *psc.RunAsUser, 0
			if e, ok := lookupUser(b.s.Pause.Passwd, fmt.Sprint(*psc.RunAsUser)); ok && e.uid == *psc.RunAsUser {
				d.GID = e.gid
			}
		}
		if psc.RunAsGroup != nil {
			d.GID = *psc.RunAsGroup
		}
		if psc.FSGroup != nil {
			d.GIDs = append(d.GIDs, *psc.FSGroup)
		}
		d.GIDs = append(d.GIDs, psc.SupplementalGroups...)
	}
	d.GIDs = append(d.GIDs, d.GID)
	slices.Sort(d.GIDs)
	d.GIDs = slices.Compact(d.GIDs)
	sort.Strings(d.PodSysctls)
	d.PodSysctls = slices.Compact(d.PodSysctls)
	b.data.Sandboxes = append(b.data.Sandboxes, d)
}

// sysctlName is the kubelet's form of a pod's sysctl name: Kubernetes also
// accepts "/" as the separator, and the kubelet then swaps "/" and "."
// (net/ipv4/conf/eth0.100/rp_filter is net.ipv4.conf.eth0/100.rp_filter).
func sysctlName(name string) string {
	if i := strings.IndexAny(name, "./"); i < 0 || name[i] == '.' {
		return name
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, name)
}

// addContainer files an entry under its container name.
func (b *builder) addContainer(d containerData) {
	d.Expect = expected(&d, b.data.Annotations)
	b.data.Containers[d.Name] = append(b.data.Containers[d.Name], d)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// orEmptyMap keeps a map the settings left out from reaching the rules as
// null.
func orEmptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func shareProcessNamespace(w *Workload) bool {
	return w.Spec.ShareProcessNamespace != nil && *w.Spec.ShareProcessNamespace
}

// container adds one container of w.
func (b *builder) container(w *Workload, c corev1.Container) error {
	where := fmt.Sprintf("%s/%s container %s", w.Kind, w.Name, c.Name)
	img := b.images[c.Image]
	if img == nil {
		return fmt.Errorf("%s: image %q was not resolved", where, c.Image)
	}
	d := containerData{
		Name: c.Name, Workload: w.Kind + "/" + w.Name, PodName: w.PodName, Image: img.Pinned,
		EnvNames: []string{}, EnvPatterns: []string{}, Mounts: mountRules{}, StorageDrivers: []string{},
		Exec: [][]string{}, TTY: c.TTY, SharePID: shareProcessNamespace(w), RootHashes: orEmpty(img.RootHashes),
		podSecurity: b.podSecurity(w, c.SecurityContext), RootfsPropagation: rootfsPropagation(c),
	}
	vars, forms, err := b.env(where, w, c, img, &d)
	if err != nil {
		return err
	}
	d.GPUs = b.gpus(c)
	d.Args, d.ArgPatterns = args(c, img, vars, forms)
	if len(d.Args) == 0 {
		return fmt.Errorf("%s: no command: neither the pod spec nor the image says what to run", where)
	}
	d.Cwd = c.WorkingDir
	if d.Cwd == "" {
		d.Cwd = img.Config.WorkingDir
	}
	if d.Cwd == "" {
		d.Cwd = "/"
	}
	if err := b.user(where, w, c, img, &d); err != nil {
		return err
	}
	b.security(w, c, &d)
	if err := b.mounts(where, w, c, img, &d); err != nil {
		return err
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p != nil && p.Exec != nil {
			d.addExec(probeCommand(p.Exec.Command, c.Env))
		}
	}
	// A hook's command goes to the runtime as written: the kubelet does
	// not expand it (pkg/kubelet/lifecycle/handlers.go handlerRunner.Run).
	if c.Lifecycle != nil {
		for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
			if h != nil && h.Exec != nil {
				d.addExec(h.Exec.Command)
			}
		}
	}
	b.addContainer(d)
	return nil
}

func (d *containerData) addExec(cmd []string) {
	for _, e := range d.Exec {
		if slices.Equal(e, cmd) {
			return
		}
	}
	d.Exec = append(d.Exec, cmd)
}

// env computes the container's environment the way the kubelet and
// containerd do: the image's, overridden by the pod spec's. It returns, for
// $(VAR) expansion in command and args, the pod spec's variables whose
// values are known and the forms (unanchored regexes) of those known only
// by form or by name: the kubelet expands with the pod spec's variables
// only, before containerd merges in the image's.
func (b *builder) env(where string, w *Workload, c corev1.Container, img *ImageInfo, d *containerData) (vars, forms map[string]string, err error) {
	known := map[string]string{}
	vars = map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := known[k]; !ok {
			order = append(order, k)
		}
		known[k], vars[k] = v, v
	}
	for _, e := range img.Config.Env {
		k, v, _ := strings.Cut(e, "=")
		set(k, v)
	}
	clear(vars)
	// unknown are the names whose values the policy cannot pin: the
	// regex their values match, "" for any value.
	unknown := map[string]string{}
	// byForm makes name's value one known only by its form.
	byForm := func(name, form string) {
		if _, ok := known[name]; ok {
			delete(known, name)
			order = slices.DeleteFunc(order, func(k string) bool { return k == name })
		}
		delete(vars, name)
		unknown[name] = form
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm := b.in.ConfigMaps[ef.ConfigMapRef.Name]
			if cm == nil {
				return nil, nil, fmt.Errorf("%s: envFrom ConfigMap %q: give the ConfigMap alongside the workload, its keys become env names", where, ef.ConfigMapRef.Name)
			}
			// Sorted, so the same input always renders the same policy.
			for _, k := range slices.Sorted(maps.Keys(cm.Data)) {
				delete(unknown, ef.Prefix+k)
				set(ef.Prefix+k, cm.Data[k])
			}
		case ef.SecretRef != nil:
			s := b.in.Secrets[ef.SecretRef.Name]
			if s == nil {
				return nil, nil, fmt.Errorf("%s: envFrom Secret %q: give the Secret alongside the workload, its keys become env names", where, ef.SecretRef.Name)
			}
			// Secret values stay out of the policy (initdata is not
			// secret); only the names are pinned.
			for k := range s.Data {
				byForm(ef.Prefix+k, "")
			}
			for k := range s.StringData {
				byForm(ef.Prefix+k, "")
			}
		}
	}
	for _, e := range c.Env {
		// A later definition of a name replaces an earlier one.
		delete(d.EnvSandbox, e.Name)
		switch {
		case e.ValueFrom == nil:
			// The kubelet expands a value with the variables before it
			// (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables); one
			// that refers to a value known only by form has a form too.
			x := expandRefs(e.Value, vars, envForms(unknown))
			if x.Form != "" {
				byForm(e.Name, x.Form)
				continue
			}
			delete(unknown, e.Name)
			set(e.Name, x.Text)
		case e.ValueFrom.ConfigMapKeyRef != nil && b.in.ConfigMaps[e.ValueFrom.ConfigMapKeyRef.Name] != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			v, ok := b.in.ConfigMaps[ref.Name].Data[ref.Key]
			if !ok {
				return nil, nil, fmt.Errorf("%s: env %s: ConfigMap %s has no key %q", where, e.Name, ref.Name, ref.Key)
			}
			delete(unknown, e.Name)
			set(e.Name, v)
		default:
			// The downward API (fieldRef, resourceFieldRef): the value
			// when the YAML says it, else its form. Secrets and ConfigMaps
			// not given: the name is pinned, the value cannot be.
			var dw downward
			if e.ValueFrom.FieldRef != nil || e.ValueFrom.ResourceFieldRef != nil {
				dw = b.downwardValue(w, e.ValueFrom)
			}
			if dw.known {
				delete(unknown, e.Name)
				set(e.Name, dw.value)
				continue
			}
			byForm(e.Name, dw.pattern)
			if f := e.ValueFrom.FieldRef; f != nil && (f.FieldPath == "metadata.name" || f.FieldPath == "metadata.namespace") {
				if d.EnvSandbox == nil {
					d.EnvSandbox = map[string]string{}
				}
				d.EnvSandbox[e.Name] = strings.TrimPrefix(f.FieldPath, "metadata.")
			}
		}
	}
	d.Env = []string{}
	for _, k := range order {
		if _, ok := unknown[k]; !ok {
			d.Env = append(d.Env, k+"="+known[k])
		}
	}
	for k, pattern := range unknown {
		if pattern == "" {
			d.EnvNames = append(d.EnvNames, k)
		} else {
			d.EnvPatterns = append(d.EnvPatterns, envPattern(k, pattern))
		}
	}
	sort.Strings(d.EnvNames)
	sort.Strings(d.EnvPatterns)
	return vars, envForms(unknown), nil
}

// envForms are the forms of the values not known, for expansion: a value
// pinned by name only may be any text.
func envForms(unknown map[string]string) map[string]string {
	forms := make(map[string]string, len(unknown))
	for k, f := range unknown {
		if f == "" {
			f = anyValue
		}
		forms[k] = f
	}
	return forms
}

// args is the process the container runtime starts: command replaces the
// image's entrypoint (and drops its cmd), args replace the cmd. The
// kubelet expands $(VAR) in the pod spec's command and args only
// (pkg/kubelet/container/helpers.go ExpandContainerCommandAndArgs), never
// in the image's, which containerd adds later. patterns is nil when every
// word is exact, else one anchored regex per word ("" for an exact one):
// a word that refers to a value known only by form.
func args(c corev1.Container, img *ImageInfo, vars, forms map[string]string) (out, patterns []string) {
	var words []expansion
	add := func(ss []string, expand bool) {
		for _, s := range ss {
			if expand {
				words = append(words, expandRefs(s, vars, forms))
			} else {
				words = append(words, expansion{Text: s})
			}
		}
	}
	switch {
	case len(c.Command) > 0:
		add(c.Command, true)
		add(c.Args, true)
	case len(c.Args) > 0:
		add(img.Config.Entrypoint, false)
		add(c.Args, true)
	default:
		add(img.Config.Entrypoint, false)
		add(img.Config.Cmd, false)
	}
	out = make([]string, len(words))
	for i, x := range words {
		out[i] = x.Text
		if x.Form != "" && patterns == nil {
			patterns = make([]string, len(words))
		}
	}
	if patterns != nil {
		for i, x := range words {
			if x.Form != "" {
				patterns[i] = "^" + x.Form + "$"
			}
		}
	}
	return out, patterns
}

// user resolves the uid and gid the container runs as, and the groups it
// may carry: the user's groups in the image, fsGroup and
// supplementalGroups.
func (b *builder) user(where string, w *Workload, c corev1.Container, img *ImageInfo, d *containerData) error {
	psc := w.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	userPart, groupPart, _ := strings.Cut(img.Config.User, ":")
	var uid, gid int64
	name := ""
	gidKnown := false
	switch {
	case sc.RunAsUser != nil:
		uid = *sc.RunAsUser
	case psc.RunAsUser != nil:
		uid = *psc.RunAsUser
	case userPart != "":
		if e, ok := lookupUser(img.Passwd, userPart); ok {
			uid, gid, name, gidKnown = e.uid, e.gid, e.name, true
		} else if _, err := fmt.Sscan(userPart, &uid); err != nil {
			return fmt.Errorf("%s: image user %q is not in the image's /etc/passwd", where, userPart)
		}
	}
	if name == "" {
		if e, ok := lookupUser(img.Passwd, fmt.Sprint(uid)); ok {
			name = e.name
			if !gidKnown {
				gid, gidKnown = e.gid, true
			}
		}
	}
	switch {
	case sc.RunAsGroup != nil:
		gid = *sc.RunAsGroup
	case psc.RunAsGroup != nil:
		gid = *psc.RunAsGroup
	case groupPart != "":
		if g, ok := lookupGroup(img.Group, groupPart); ok {
			gid = g
		} else if _, err := fmt.Sscan(groupPart, &gid); err != nil {
			return fmt.Errorf("%s: image group %q is not in the image's /etc/group", where, groupPart)
		}
	}
	d.UID, d.GID = uid, &gid
	gids := []int64{gid}
	gids = append(gids, memberGroups(img.Group, name)...)
	if psc.FSGroup != nil {
		gids = append(gids, *psc.FSGroup)
	}
	gids = append(gids, psc.SupplementalGroups...)
	slices.Sort(gids)
	d.GIDs = slices.Compact(gids)
	return nil
}

// security fills capabilities and the privilege-related fields.
func (b *builder) security(w *Workload, c corev1.Container, d *containerData) {
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	d.Privileged = sc.Privileged != nil && *sc.Privileged
	d.NoNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation && !d.Privileged
	d.ReadonlyRoot = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	d.MaskedPaths, d.ReadonlyPaths = b.s.MaskedPaths, b.s.ReadonlyPaths
	if d.Privileged {
		d.MaskedPaths, d.ReadonlyPaths, d.Caps = []string{}, []string{}, []string{}
		return
	}
	caps := slices.Clone(b.s.DefaultCaps)
	if sc.Capabilities != nil {
		for _, a := range sc.Capabilities.Add {
			caps = append(caps, capName(string(a)))
		}
		for _, r := range sc.Capabilities.Drop {
			if strings.EqualFold(string(r), "ALL") {
				caps = caps[:0]
				for _, a := range sc.Capabilities.Add {
					caps = append(caps, capName(string(a)))
				}
				break
			}
			caps = slices.DeleteFunc(caps, func(x string) bool { return x == capName(string(r)) })
		}
	}
	slices.Sort(caps)
	d.Caps = slices.Compact(caps)
}

func capName(s string) string {
	s = strings.ToUpper(s)
	if !strings.HasPrefix(s, "CAP_") {
		s = "CAP_" + s
	}
	return s
}

// mounts turns volumeMounts into mount rules, using where the runtime
// puts each volume kind in the guest.
func (b *builder) mounts(where string, w *Workload, c corev1.Container, img *ImageInfo, d *containerData) error {
	vols := map[string]corev1.Volume{}
	for _, v := range w.Spec.Volumes {
		vols[v.Name] = v
	}
	drivers := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			return fmt.Errorf("%s: volumeMount %q names no volume", where, vm.Name)
		}
		base := regexp.QuoteMeta(path.Base(vm.MountPath))
		m := Mount{Destination: vm.MountPath, Type: "bind", ReadOnly: vm.ReadOnly}
		propagation := mountPropagation(vm)
		switch {
		case v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory:
			m.Source = b.s.EphemeralDir + regexp.QuoteMeta(v.Name) + "$"
			drivers["ephemeral"] = true
		case v.EmptyDir != nil:
			m.Source = b.s.BlockDir + volumeName
			drivers["blk"], drivers["local"] = true, true
		case v.ConfigMap != nil, v.Secret != nil, v.Projected != nil, v.DownwardAPI != nil:
			// Copied into the guest file by file (CopyFile) and bound
			// read-only, as Kubernetes always mounts them.
			m.Source, m.ReadOnly = b.s.SharedFile+base+"$", true
		case v.HostPath != nil && isGuestPath(v.HostPath.Path):
			// /dev, /sys and /proc paths bind the guest's own.
			m.Source = "^" + regexp.QuoteMeta(v.HostPath.Path) + "$"
		case v.HostPath != nil:
			m.Source = b.s.SharedFile + base + "$"
		case v.PersistentVolumeClaim != nil, v.Ephemeral != nil, v.CSI != nil:
			m.Source = b.s.BlockDir + volumeName
			drivers["blk"] = true
		default:
			return fmt.Errorf("%s: volume %q: this volume kind is not supported", where, v.Name)
		}
		for _, opts := range volumeOptions(vm, propagation, m.ReadOnly) {
			m.Options = opts
			d.Mounts.add(m)
		}
	}
	b.imageVolumes(c, img, d)
	for k := range drivers {
		d.StorageDrivers = append(d.StorageDrivers, k)
	}
	sort.Strings(d.StorageDrivers)
	return nil
}

// imageVolumes adds a rule for each of the image's VOLUMEs that no
// volumeMount covers: containerd binds a fresh host directory there
// (internal/cri/server/container_create.go volumeMounts, which skips a
// destination a CRI mount has, compared cleaned), read-write, and the
// Kata runtime shares it as <id>-<16 hex>-<base of the destination>
// (src/runtime/virtcontainers/fs_share_linux.go).
func (b *builder) imageVolumes(c corev1.Container, img *ImageInfo, d *containerData) {
	for _, dst := range slices.Sorted(maps.Keys(img.Config.Volumes)) {
		if slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return path.Clean(vm.MountPath) == path.Clean(dst) }) {
			continue
		}
		d.Mounts.add(Mount{Destination: dst, Type: "bind", Source: b.s.SharedFile + regexp.QuoteMeta(path.Base(dst)) + "$", Options: bindOptions("rprivate", false)})
	}
}

// volumeOptions are the option lists a volumeMount's bind may have:
// containerd's (bindOptions), with "rro" for "ro" when recursiveReadOnly
// is Enabled, or either when IfPossible (the kubelet asks for rro when
// the runtime says it supports it; containerd WithMounts, lines 185-196).
func volumeOptions(vm corev1.VolumeMount, propagation string, readOnly bool) [][]string {
	rro := []string{"rbind", propagation, "rro"}
	switch {
	case !readOnly || vm.RecursiveReadOnly == nil || *vm.RecursiveReadOnly == corev1.RecursiveReadOnlyDisabled:
		return [][]string{bindOptions(propagation, readOnly)}
	case *vm.RecursiveReadOnly == corev1.RecursiveReadOnlyEnabled:
		return [][]string{rro}
	}
	return [][]string{bindOptions(propagation, readOnly), rro}
}

// mountPropagation is the propagation option containerd gives a
// volumeMount's bind (WithMounts, lines 155-178): the kubelet's
// PROPAGATION_PRIVATE for None or nothing, HOST_TO_CONTAINER rslave,
// BIDIRECTIONAL rshared.
func mountPropagation(vm corev1.VolumeMount) string {
	switch {
	case vm.MountPropagation == nil:
		return "rprivate"
	case *vm.MountPropagation == corev1.MountPropagationHostToContainer:
		return "rslave"
	case *vm.MountPropagation == corev1.MountPropagationBidirectional:
		return "rshared"
	}
	return "rprivate"
}

// volumeName is the regex of one entry of a volume directory: a volume
// name, or the Go runtime's name for a block volume, base64url of its
// source with "=" padding (src/runtime/virtcontainers/kata_agent.go
// handleBlkOCIMounts). Never "." or "..", which name the directory itself
// or its parent: no entry starts with a dot.
const volumeName = "[A-Za-z0-9_=-][A-Za-z0-9_.=-]*$"

func isGuestPath(p string) bool {
	for _, pre := range []string{"/dev", "/sys", "/proc"} {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}
