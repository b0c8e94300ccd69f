//go:build katacompat

package generate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Kata's genpolicy ships request test cases (src/tools/genpolicy/tests/
// policy/testdata/<case>/{pod.yaml,testcases.json}, run by tests/policy/
// main.rs): one policy is generated per pod.yaml and every request of
// testcases.json is decided by it in order, each with the verdict it
// expects. ci/kata-compat.sh extracts them (tag 4.1.0) into KATA_TESTDATA
// as <case with / as _>.{pod.yaml,config_map.yaml,testcases.json}. This
// test generates our policy for the same YAML, against local images that
// stand for the ones the YAML names, decides the same requests, and
// classifies every disagreement.

// kataImage is a local stand-in for an image a genpolicy test pod names:
// its config and /etc files are what the test cases' recorded requests
// show the real image has (the cited allowed requests).
type kataImage struct {
	upstream   string // repository the YAML and the requests name
	local      string // repo:tag in the local registry
	entrypoint []string
	cmd        []string
	env        []string
	workdir    string
	user       string
	volumes    []string
	files      map[string]string
}

const kataPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var kataImages = []kataImage{
	// registry.k8s.io/pause:3.6: Args ["/pause"], Cwd "/", Env PATH only
	// (createcontainer/gpu_vfio_cdi testcases.json, first case); the image
	// runs as 65535:65535 and has no /etc/passwd (kubernetes
	// build/pause/Dockerfile, USER 65535:65535).
	{upstream: "registry.k8s.io/pause", local: "pause:3.6", entrypoint: []string{"/pause"}, env: []string{kataPath},
		workdir: "/", user: "65535:65535", files: map[string]string{"/pause": "pause\n"}},
	// ghcr.io/burgerdev/weird-images/gid (commit 74b32e2, src/gid): USER
	// name, ENTRYPOINT ["/entrypoint.sh"], its passwd and group files;
	// Args/Cwd/Env as in createcontainer/gid testcases.json, first case.
	{upstream: "ghcr.io/burgerdev/weird-images/gid", local: "weird-images/gid:latest", entrypoint: []string{"/entrypoint.sh"},
		env: []string{kataPath}, workdir: "/", user: "name",
		files: map[string]string{"/etc/passwd": "name:x:2:1::/home/name:/usr/sbin/nologin\n", "/etc/group": "daemon:x:1:\nname:x:2:name\n", "/entrypoint.sh": "#!/bin/sh\n"}},
	// opstree/redis (both names): Args ["/usr/bin/entrypoint.sh"], Cwd
	// /data, Env PATH and REDIS_PORT=6379, VOLUMEs /data and /node-conf,
	// both bound from the shared directory though the pod mounts neither
	// (createcontainer/security_context/supplemental_groups and
	// volumes/container_image testcases.json).
	{upstream: "quay.io/kata-containers/test-images/opstree/redis", local: "test-images/opstree/redis:sha256-2642c7b07713df6897fa88cbe6db85170690cf3650018ceb2ab16cfa0b4f8d48",
		entrypoint: []string{"/usr/bin/entrypoint.sh"}, env: []string{kataPath, "REDIS_PORT=6379"}, workdir: "/data", volumes: []string{"/data", "/node-conf"},
		files: map[string]string{"/usr/bin/entrypoint.sh": "#!/bin/sh\n"}},
	{upstream: "quay.io/opstree/redis", local: "opstree/redis:latest",
		entrypoint: []string{"/usr/bin/entrypoint.sh"}, env: []string{kataPath, "REDIS_PORT=6379"}, workdir: "/data", volumes: []string{"/data", "/node-conf"},
		files: map[string]string{"/usr/bin/entrypoint.sh": "#!/bin/sh\n"}},
	// quay.io/prometheus/busybox: root with no further groups (AdditionalGids
	// [0, 10] with supplementalGroups [10], state/execprocess testcases.json).
	{upstream: "quay.io/prometheus/busybox", local: "prometheus/busybox:latest", cmd: []string{"sh"}, env: []string{kataPath}, workdir: "/",
		files: map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "/etc/group": "root:x:0:\nwheel:x:10:\n"}},
}

// buildKataImages pushes the stand-ins to a local registry.
func buildKataImages(t *testing.T) (*testregistry.Registry, string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("needs root (umoci)")
	}
	reg := testregistry.Start(t)
	dir := t.TempDir()
	for i, im := range kataImages {
		d := filepath.Join(dir, fmt.Sprint(i))
		ref := testregistry.Build(t, d, nil, testregistry.Files(im.files))
		image := strings.TrimPrefix(ref, "oci:")
		args := []string{"config", "--image", image, "--clear", "config.env", "--clear", "config.cmd", "--clear", "config.entrypoint", "--config.workingdir", im.workdir}
		for _, e := range im.env {
			args = append(args, "--config.env", e)
		}
		for _, e := range im.entrypoint {
			args = append(args, "--config.entrypoint", e)
		}
		for _, c := range im.cmd {
			args = append(args, "--config.cmd", c)
		}
		for _, v := range im.volumes {
			args = append(args, "--config.volume", v)
		}
		if im.user != "" {
			args = append(args, "--config.user", im.user)
		}
		testregistry.Run(t, nil, "umoci", args...)
		reg.Push(t, ref, im.local, nil)
	}
	conf := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", reg.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	return reg, conf
}

// repository is ref without its tag and digest.
func repository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// localYAML rewrites the test pod's image references to the local
// registry: the YAML names upstream images, some by digest, which a local
// image can never have.
func localYAML(t *testing.T, yaml, addr string) string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(yaml, "\n") {
		k, v, ok := strings.Cut(line, "image:")
		if lead := strings.TrimSpace(k); ok && (lead == "" || lead == "-") {
			ref := strings.Trim(strings.TrimSpace(v), `"`)
			im := kataImageOf(ref)
			if im == nil {
				t.Fatalf("no local stand-in for image %q", ref)
			}
			line = k + "image: " + addr + "/" + im.local
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func kataImageOf(ref string) *kataImage {
	for i := range kataImages {
		if kataImages[i].upstream == repository(ref) {
			return &kataImages[i]
		}
	}
	return nil
}

// kataCase is one request of testcases.json.
type kataCase struct {
	Description string          `json:"description"`
	Allowed     bool            `json:"allowed"`
	Kind        string          `json:"kind"`
	Request     json.RawMessage `json:"request"`
}

// Disagreement classes.
const (
	classImage    = "a" // image-dependent or fixture
	classStricter = "b" // genpolicy allows what we deny on purpose
	classLooser   = "c" // we allow what genpolicy denies
	classShape    = "d" // request shape we do not understand
)

// classes are the table's columns after the request count: "" agrees.
var classes = []string{"", classImage, classStricter, classLooser, classShape}

// known are the disagreements that are not image identity or the
// guest-pull storage (those are found by normalising the request, below),
// by "<case>: <description>", with the class and why.
var known = map[string]struct{ class, why string }{
	// (b) genpolicy allows what we deny.
	"createcontainer_generate_name: generated name with valid prefix (dummysfx)": {classStricter,
		"sandbox-name: generateName gets exactly 5 random characters (dummy + 3 is no pod name); also a network namespace path"},
	"createcontainer_gpu_vfio_cdi: Valid: Hot-plug - 2 GPUs with properly correlated VFIO devices and CDI annotations": {classStricter,
		"devices: GPUs (vfio-pci-gk) are not supported; the policy allows no device"},
	"createcontainer_network_namespace: one network namespace":  {classStricter, "OCI.Linux.Namespaces: no namespace path (the Go runtime strips the network namespace)"},
	"createcontainer_network_namespace: same network namespace": {classStricter, "OCI.Linux.Namespaces: no namespace path (the Go runtime strips the network namespace)"},
	"createcontainer_volumes_config_map: CreateContainer with config map volume": {classStricter,
		"OCI.Process.Env: the recorded request has no env at all (we require the image's PATH); also a network namespace path"},
	"createcontainer_volumes_emptydir: volumeMount: valid mount structure": {classStricter,
		"OCI.Process.Env: the recorded request has no env at all (we require the image's PATH); also a network namespace path"},
	"createcontainer_volumes_emptydir: volumeMount: valid mount destination(s)": {classStricter,
		"OCI.Process.Env: the recorded request has no env at all (we require the image's PATH); also a network namespace path"},
	"createsandbox: no pidns": {classStricter, "hostname: the recorded request has none; we pin the pod's host name"},
	"state_execprocess: create container request for first container": {classStricter,
		"OCI.Process.Env lacks the spec's CONTAINER_NAME; OOMScoreAdj -998 (the sandbox's) and Hostname set on a workload container"},
	"state_execprocess: create container request for second container": {classStricter,
		"OCI.Process.Env lacks the spec's CONTAINER_NAME; OOMScoreAdj -998 (the sandbox's) and Hostname set on a workload container"},

	// (c) we allow what genpolicy denies.
	"createcontainer_network_namespace: no network namespace": {classLooser,
		"OCI.Linux.Namespaces: no network namespace is what the Go runtime sends; genpolicy wants the one an earlier container had"},
	"state_execprocess: test exec process in first container with non-empty capabilities": {classLooser, "process.Capabilities: allowed within the container's own, which runtime-rs sends; genpolicy wants none"},
	"state_execprocess: test exec process in first container with NoNewPrivileges=true":   {classLooser, "process.NoNewPrivileges: not checked, true only takes privileges away"},
	"state_execprocess: test exec process fail for first container":                       {classLooser, "ExecProcess: no state, so a removed container's commands stay allowed (the agent refuses an exec into a container it does not have)"},

	// (d) requests we do not understand.
	"createcontainer_volumes_container_image: CreateContainer with a container image having volumes": {classShape,
		"the recorded request carries genpolicy's own placeholders ($(host-name) in Env, $(default_caps) in Capabilities), never sent by a runtime; also a network namespace path"},
}

// A normalisation turns a recorded request into the one the runtime would
// send to our policy's pod; the class of a disagreement that it removes
// is its class.
type normalisation struct {
	name  string
	class string
	apply func(*caseRun, *agentpb.CreateContainerRequest)
}

// normalisations apply in this order, each on top of the ones before.
var normalisations = []normalisation{
	{"image identity", classImage, (*caseRun).mapImage},
	{"container id", classImage, (*caseRun).fixIDs},
	{"guest-pull storage", classStricter, (*caseRun).addPull},
}

// execEnvFix is the one normalisation of an ExecProcess: the environment
// of the container it runs in, as the recorded CreateContainer of that
// container should have had it.
const execEnvFix = "container environment"

func TestGenpolicyCases(t *testing.T) {
	dir := os.Getenv("KATA_TESTDATA")
	if dir == "" {
		t.Fatal("-tags katacompat needs KATA_TESTDATA (see ci/kata-compat.sh)")
	}
	pods, err := filepath.Glob(filepath.Join(dir, "*.pod.yaml"))
	if err != nil || len(pods) == 0 {
		t.Fatalf("no genpolicy test pods in %s: %v", dir, err)
	}
	sort.Strings(pods)
	reg, conf := buildKataImages(t)
	cache := t.TempDir()
	table := []string{"| case | requests | agree | (a) image/fixture | (b) we pin more | (c) we allow more | (d) shape |", "|---|---|---|---|---|---|---|"}
	var total [6]int
	seen := map[string]bool{}
	for _, pod := range pods {
		name := strings.TrimSuffix(filepath.Base(pod), ".pod.yaml")
		yaml := readFile(t, pod)
		yaml = quoteSysctlValues(yaml)
		if cm, err := os.ReadFile(filepath.Join(dir, name+".config_map.yaml")); err == nil {
			yaml += "\n---\n" + string(cm)
		}
		res, err := Generate(context.Background(), []byte(localYAML(t, yaml, reg.Addr)), Options{Images: ImageOptions{RegistriesConf: conf, CacheDir: cache}})
		if err != nil {
			t.Fatalf("%s: generate: %v", name, err)
		}
		var cases []kataCase
		if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, name+".testcases.json"))), &cases); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := caseRun{t: t, name: name, res: res}
		n.execEnv = n.containerEnvs(cases)
		n.p, err = policy.Load(context.Background(), res.Policy, "generated")
		if err != nil {
			t.Fatal(err)
		}
		var row [6]int
		for _, c := range cases {
			key := name + ": " + c.Description
			seen[key] = true
			class, why := n.check(key, c)
			row[0]++
			row[1+slices.Index(classes, class)]++
			if class != "" {
				t.Logf("(%s) %s [want allowed=%v]: %s", class, key, c.Allowed, why)
			}
		}
		for i := range total {
			total[i] += row[i]
		}
		table = append(table, fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d |", name, row[0], row[1], row[2], row[3], row[4], row[5]))
	}
	table = append(table, fmt.Sprintf("| **total** | %d | %d | %d | %d | %d | %d |", total[0], total[1], total[2], total[3], total[4], total[5]))
	for key := range known {
		if !seen[key] {
			t.Errorf("listed disagreement %q is not a test case", key)
		}
	}
	t.Logf("agreement with genpolicy's test cases:\n%s", strings.Join(table, "\n"))
}

// check classifies c's outcome and holds it to the known table: the
// disagreements normalisation explains must not be listed, all others must
// be, with the class found. A listed shape problem may be denied.
func (n *caseRun) check(key string, c kataCase) (string, string) {
	class, why := n.classify(c)
	k, listed := known[key]
	explained := class == "" || class == classImage || why == normalisations[len(normalisations)-1].name || why == execEnvFix
	switch {
	case explained && listed:
		n.t.Errorf("%s: listed as (%s) %s, but the outcome is (%s) %s", key, k.class, k.why, class, why)
	case explained:
	case !listed:
		n.t.Errorf("%s: unlisted disagreement (%s): want allowed=%v; %s", key, class, c.Allowed, why)
	case k.class == classShape && class == classStricter:
		return classShape, k.why
	case k.class != class:
		n.t.Errorf("%s: listed as (%s) %s, but the outcome is (%s) %s", key, k.class, k.why, class, why)
	default:
		return class, k.why
	}
	return class, why
}

// quoteSysctlValues quotes the number in createcontainer/sysctls'
// pod.yaml ("value: 1"): Kubernetes' Sysctl.Value is a string, so the API
// server and k8s.io/api refuse the number, while genpolicy's serde reads
// it.
func quoteSysctlValues(yaml string) string {
	return regexp.MustCompile(`(?m)^(\s+value: )([0-9]+)$`).ReplaceAllString(yaml, `$1"$2"`)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// caseRun decides the requests of one test case under our policy for its
// pod.
type caseRun struct {
	t    *testing.T
	name string
	res  *Result
	p    *policy.Policy
	// execEnv are, by container id, the pod spec's literal env entries
	// of the container the case's CreateContainer requests create.
	execEnv map[string][]string
}

// containerEnvs maps the container ids of the case's CreateContainer
// requests to the literal env entries the pod spec gives that container
// (by its container-name annotation).
func (n *caseRun) containerEnvs(cases []kataCase) map[string][]string {
	in, err := ParseInput(n.res.YAML, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	out := map[string][]string{}
	for _, c := range cases {
		if c.Kind != "CreateContainerRequest" {
			continue
		}
		var r agentpb.CreateContainerRequest
		if err := input.Decode(c.Request, &r); err != nil || r.OCI == nil {
			continue
		}
		for _, w := range in.Workloads {
			for _, ct := range append(w.Spec.InitContainers, w.Spec.Containers...) {
				if ct.Name != r.OCI.Annotations["io.kubernetes.cri.container-name"] {
					continue
				}
				for _, e := range ct.Env {
					if e.ValueFrom == nil {
						out[r.ContainerId] = append(out[r.ContainerId], e.Name+"="+e.Value)
					}
				}
			}
		}
	}
	return out
}

// addContainerEnv gives an exec the pod spec's env entries of its
// container that the recorded request lacks: containerd runs an exec with
// the container's own environment (internal/cri/server/
// container_execsync.go execInternal), and genpolicy's recorded requests
// were made from containers created without them.
func (n *caseRun) addContainerEnv(r *agentpb.ExecProcessRequest) {
	if r.Process == nil {
		return
	}
	for _, e := range n.execEnv[r.ContainerId] {
		name, _, _ := strings.Cut(e, "=")
		if !slices.ContainsFunc(r.Process.Env, func(x string) bool { return strings.HasPrefix(x, name+"=") }) {
			r.Process.Env = append(r.Process.Env, e)
		}
	}
}

// classify decides c and returns "" when we agree with genpolicy, else
// the class of the disagreement and what decided it. The fully normalised
// request decides: a denial that only the fixture caused must not count
// as agreement.
func (n *caseRun) classify(c kataCase) (string, string) {
	v := n.decideAll(c)
	last := v[len(v)-1]
	if last.Allowed != c.Allowed {
		if last.Allowed {
			return classLooser, "allowed"
		}
		return classStricter, reason(last)
	}
	i := len(v) - 1
	for i > 0 && v[i-1].Allowed == c.Allowed {
		i--
	}
	if i == 0 {
		return "", ""
	}
	if c.Kind == "ExecProcessRequest" {
		return classStricter, execEnvFix
	}
	return normalisations[i-1].class, normalisations[i-1].name
}

func reason(d policy.Decision) string {
	if d.Prints != "" {
		return d.Prints
	}
	return d.Why
}

// decideAll decides c verbatim and after each normalisation.
func (n *caseRun) decideAll(c kataCase) []policy.Decision {
	t := n.t
	if c.Kind == "CopyFileRequest" {
		var doc map[string]any
		dec := json.NewDecoder(bytes.NewReader(c.Request))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return []policy.Decision{n.decide(c.Kind, input.CopyFileDefaults(doc))}
	}
	m, err := input.NewRequest(c.Kind)
	if err != nil {
		t.Fatal(err)
	}
	if err := input.Decode(c.Request, m); err != nil {
		t.Fatalf("%s: %s: %v", n.name, c.Description, err)
	}
	if ex, ok := m.(*agentpb.ExecProcessRequest); ok {
		out := []policy.Decision{n.decide(c.Kind, input.Encode(ex))}
		ex = proto.Clone(ex).(*agentpb.ExecProcessRequest)
		n.addContainerEnv(ex)
		return append(out, n.decide(c.Kind, input.Encode(ex)))
	}
	cc, ok := m.(*agentpb.CreateContainerRequest)
	if !ok {
		return []policy.Decision{n.decide(c.Kind, input.Encode(m))}
	}
	out := []policy.Decision{n.decide(c.Kind, input.Encode(m))}
	cc = proto.Clone(cc).(*agentpb.CreateContainerRequest)
	for _, nm := range normalisations {
		nm.apply(n, cc)
		out = append(out, n.decide(c.Kind, input.Encode(cc)))
	}
	return out
}

// decide is the engine's decision, with the rules' print output when it
// denies. Our rules keep no state between requests (genpolicy's do: it
// runs a case's requests in order because of that), so each request and
// each variant of it is decided on its own; the test holds them to that.
func (n *caseRun) decide(kind string, doc map[string]any) policy.Decision {
	d, err := n.p.Evaluate(context.Background(), kind, doc)
	if err != nil {
		n.t.Fatalf("%s: %s: %v", n.name, kind, err)
	}
	if len(d.Ops) != 0 {
		n.t.Fatalf("%s: %s: the generated rules now keep state (ops %s): decide the requests in order", n.name, kind, d.Ops)
	}
	if !d.Allowed {
		if x, err := n.p.Explain(context.Background(), kind, doc); err == nil {
			d = x
		}
	}
	return d
}

// fixIDs gives a request whose container id was made up for the test
// ("", "gid", "gpu-container") a runtime-shaped one: the 64 hex digits of
// its rootfs directory when that has them, else a digest of the made-up
// id, used consistently in the id, the rootfs, the rootfs storage and the
// shared files (<id>-<16 hex>-<name>) as the Kata runtime names them.
func (n *caseRun) fixIDs(r *agentpb.CreateContainerRequest) {
	if r.OCI == nil || r.OCI.Root == nil || hex64.MatchString(r.ContainerId) {
		return
	}
	root := r.OCI.Root.Path
	old := filepath.Base(filepath.Dir(root))
	id := old
	if !hex64.MatchString(id) {
		sum := sha256.Sum256([]byte(r.ContainerId))
		id = hex.EncodeToString(sum[:])
	}
	r.ContainerId = id
	r.OCI.Root.Path = filepath.Join(filepath.Dir(filepath.Dir(root)), id, "rootfs")
	for _, s := range r.Storages {
		if s.MountPoint == root || strings.HasSuffix(s.MountPoint, "/"+old+"/rootfs") {
			s.MountPoint = filepath.Join(filepath.Dir(filepath.Dir(s.MountPoint)), id, "rootfs")
		}
	}
	const shared = "/run/kata-containers/shared/containers/"
	for _, m := range r.OCI.Mounts {
		rest, ok := strings.CutPrefix(m.Source, shared)
		if cid, tail, found := strings.Cut(rest, "-"); ok && found && !hex64.MatchString(cid) {
			m.Source = shared + id + "-" + tail
		}
	}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// pinned is our digest-pinned reference for an upstream image name.
func (n *caseRun) pinned(ref string) string {
	im := kataImageOf(ref)
	if im == nil {
		return ""
	}
	for from, info := range n.res.Images {
		if strings.HasSuffix(from, "/"+im.local) {
			return info.Pinned
		}
	}
	return ""
}

const imageNameKey = "io.kubernetes.cri.image-name"

// mapImage replaces the upstream image identity in r (the image-name
// annotation, the guest-pull storage source) by the local stand-in's.
func (n *caseRun) mapImage(r *agentpb.CreateContainerRequest) {
	if r.OCI != nil {
		if p := n.pinned(r.OCI.Annotations[imageNameKey]); p != "" {
			r.OCI.Annotations[imageNameKey] = p
		}
	}
	for _, s := range r.Storages {
		if p := n.pinned(s.Source); s.Driver == "image_guest_pull" && p != "" {
			s.Source = p
		}
	}
}

// addPull gives r the guest-pull storage of its rootfs, and the image-name
// annotation, when it has none: the Kata runtime sends both for every
// container under guest pull (CoCo's default), and several genpolicy test
// requests were recorded without them.
func (n *caseRun) addPull(r *agentpb.CreateContainerRequest) {
	if r.OCI == nil {
		return
	}
	for _, s := range r.Storages {
		if s.Driver == "image_guest_pull" {
			return
		}
	}
	source := ""
	switch r.OCI.Annotations["io.kubernetes.cri.container-type"] {
	case "sandbox":
		source = "pause"
	case "container":
		source = n.containerImage(r.OCI.Annotations["io.kubernetes.cri.container-name"])
		if source != "" && r.OCI.Annotations[imageNameKey] == "" {
			r.OCI.Annotations[imageNameKey] = source
		}
	}
	if source == "" || r.OCI.Root == nil {
		return
	}
	// The shape of the runtime's guest-pull storage as recorded in
	// createcontainer/ignored_fields testcases.json (storages[0]).
	r.Storages = append(r.Storages, &agentpb.Storage{Driver: "image_guest_pull", Source: source, Fstype: "overlay",
		MountPoint: r.OCI.Root.Path})
}

// containerImage is the digest-locked image the rewritten YAML gives the
// container called name.
func (n *caseRun) containerImage(name string) string {
	in, err := ParseInput(n.res.YAML, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	for _, w := range in.Workloads {
		for _, c := range append(w.Spec.InitContainers, w.Spec.Containers...) {
			if c.Name == name {
				return c.Image
			}
		}
	}
	return ""
}
