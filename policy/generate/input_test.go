package generate

import (
	"strings"
	"testing"
)

func defaults(t testing.TB) *Settings {
	t.Helper()
	s, err := DefaultSettings()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseInputKinds(t *testing.T) {
	s := defaults(t)
	tmpl := `  template:
    spec:
      containers:
      - name: c
        image: busybox
`
	cases := map[string]struct {
		yaml, podName string
	}{
		"Pod":                   {"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n", "^p$"},
		"Deployment":            {"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n" + tmpl, "^d-[a-z0-9]{1,10}-[a-z0-9]{5}$"},
		"ReplicaSet":            {"apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: r\nspec:\n" + tmpl, "^r-[a-z0-9]{5}$"},
		"ReplicationController": {"apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: rc\nspec:\n" + tmpl, "^rc-[a-z0-9]{5}$"},
		"StatefulSet":           {"apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: s\nspec:\n" + tmpl, "^s-[0-9]+$"},
		"DaemonSet":             {"apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: ds\nspec:\n" + tmpl, "^ds-[a-z0-9]{5}$"},
		"Job":                   {"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n" + tmpl, "^j-[a-z0-9]{5}$"},
		"CronJob":               {"apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: cj\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n" + strings.ReplaceAll(tmpl, "\n  ", "\n      ")[0:0] + "      template:\n        spec:\n          containers:\n          - name: c\n            image: busybox\n", "^cj-[0-9]+-[a-z0-9]{5}$"},
		"List":                  {"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: svc\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p\n  spec:\n    containers:\n    - name: c\n      image: busybox\n", "^p$"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			in, err := ParseInput([]byte(c.yaml), s.PassThrough)
			if err != nil {
				t.Fatal(err)
			}
			if len(in.Workloads) != 1 {
				t.Fatalf("%d workloads", len(in.Workloads))
			}
			w := in.Workloads[0]
			if w.PodName != c.podName || len(w.Spec.Containers) != 1 || w.Spec.Containers[0].Image != "busybox" {
				t.Fatalf("workload %+v", w)
			}
			w.setImage("busybox", "reg/busybox@sha256:aa")
			out, err := in.Output()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), "image: reg/busybox@sha256:aa") || strings.Contains(string(out), "image: busybox\n") {
				t.Fatalf("image not rewritten:\n%s", out)
			}
		})
	}
}

func TestParseInputPassThroughAndErrors(t *testing.T) {
	s := defaults(t)
	svc := "# a comment\napiVersion: v1\nkind: Service\nmetadata:\n  name:   svc   # odd spacing kept\n"
	pod := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n"
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  k: v\n"
	in, err := ParseInput([]byte(svc+"---\n"+cm+"---\n"+pod), s.PassThrough)
	if err != nil {
		t.Fatal(err)
	}
	if in.ConfigMaps["cfg"] == nil || in.ConfigMaps["cfg"].Data["k"] != "v" {
		t.Fatalf("ConfigMap not read: %v", in.ConfigMaps)
	}
	out, err := in.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), svc) {
		t.Fatalf("pass-through document changed:\n%s", out)
	}
	for name, bad := range map[string]string{
		"unknown kind": "apiVersion: example.com/v1\nkind: Frobnicator\nmetadata:\n  name: x\n",
		"no kind":      "apiVersion: v1\nmetadata:\n  name: x\n",
		"no workload":  svc,
		"no container": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec: {}\n",
		"bad yaml":     "kind: Pod\n  - [",
		"wrong type":   "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: 7\n",
	} {
		_, err := ParseInput([]byte(bad), s.PassThrough)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if name == "unknown kind" && !strings.Contains(err.Error(), `"Frobnicator"`) {
			t.Errorf("unknown kind error does not name it: %v", err)
		}
	}
}

func FuzzParseInput(f *testing.F) {
	s, err := DefaultSettings()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n"))
	f.Add([]byte("kind: List\nitems:\n- kind: Pod\n  spec:\n    containers: [{name: a, image: b}]\n---\nkind: Service\n"))
	f.Add([]byte("kind: CronJob\nmetadata: {name: x}\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{}]}}}}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseInput(b, s.PassThrough)
		if err != nil {
			return
		}
		for _, w := range in.Workloads {
			w.setImage("b", "c@sha256:00")
			w.setAnnotation("k", "v")
		}
		if _, err := in.Output(); err != nil {
			t.Fatalf("parsed input does not render: %v", err)
		}
	})
}

func TestSettings(t *testing.T) {
	s := defaults(t)
	if s.Pause.Source != "pause" || len(s.Allowances) == 0 || s.Profiles["istio"] == nil {
		t.Fatalf("defaults: %+v", s)
	}
	if _, err := s.Enabled([]string{"istio"}); err == nil || !strings.Contains(err.Error(), "not pinned by digest") {
		t.Fatalf("istio profile without a digest: %v", err)
	}
	if _, err := s.Enabled([]string{"nope"}); err == nil {
		t.Fatal("unknown profile accepted")
	}
	toml := `oci_versions = ["1.1.0"]
shared_file = "^/s/"
ephemeral_dir = "^/e/"
block_dir = "^/b/"
namespaces = ["ipc", "uts", "mount"]
[[rlimits]]
type = "RLIMIT_NOFILE"
hard = 1024
soft = 1024
[oom_score_adj]
sandbox = {min = -998, max = 1000}
container = {min = -997, max = 1000}
[pause]
source = "pause"
args = ["/pause"]
cwd = "/"
namespaces = ["ipc", "uts", "mount"]
[[pause.mounts]]
destination = "/proc"
type = "proc"
source = "^proc$"
options = ["nosuid", "noexec", "nodev"]
[annotations]
container_type = "a"
container_name = "b"
sandbox_name = "c"
sandbox_namespace = "d"
image_name = "e"
[cdi]
prefix = "cdi.k8s.io/"
key = "^cdi\\.k8s\\.io/vfio[0-9]+$"
value = "^nvidia\\.com/gpu=[0-9]+$"
gpu_resources = ["nvidia.com/pgpu"]
[[allowances]]
name = "x"
env = ["^X=.*$"]
`
	got, err := ParseSettings([]byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	if got.Allowances[0].Env[0] != "^X=.*$" || got.SharedFile != "^/s/" || got.Rlimits[0].Hard != 1024 || got.OOMScoreAdj.Container.Min != -997 {
		t.Fatalf("TOML settings: %+v", got)
	}
	for name, bad := range map[string]string{
		"unknown JSON field": `{"oci_version": "1"}`,
		"unknown TOML key":   toml + "bogus = 1\n",
		"bad regex":          strings.Replace(toml, `"^/s/"`, `"(("`, 1),
		"no pause":           strings.Replace(toml, `source = "pause"`, `source = ""`, 1),
		"no pause mounts":    strings.Replace(toml, "[[pause.mounts]]\ndestination = \"/proc\"\ntype = \"proc\"\nsource = \"^proc$\"\noptions = [\"nosuid\", \"noexec\", \"nodev\"]\n", "", 1),
		// A mount that is no bind must say its options.
		"proc without options": strings.Replace(toml, "options = [\"nosuid\", \"noexec\", \"nodev\"]\n", "", 1),
		"read-only without ro": strings.Replace(toml, "source = \"^proc$\"\n", "source = \"^proc$\"\nread_only = true\n", 1),
		"bad pause env":        strings.Replace(toml, `cwd = "/"`, `cwd = "/"`+"\nenv = [\"((\"]", 1),
		"no namespaces":        strings.Replace(toml, "namespaces = [\"ipc\", \"uts\", \"mount\"]\n[[rlimits]]", "[[rlimits]]", 1),
		"no OOM score range":   strings.Replace(toml, "container = {min = -997, max = 1000}", "", 1),
		"OOM range inverted":   strings.Replace(toml, "{min = -997, max = 1000}", "{min = 5, max = 1}", 1),
		"rlimit soft > hard":   strings.Replace(toml, "soft = 1024", "soft = 4096", 1),
		"no CDI prefix":        strings.Replace(toml, `prefix = "cdi.k8s.io/"`, `prefix = ""`, 1),
		"bad CDI regex":        strings.Replace(toml, `gpu=[0-9]+$"`, `gpu=[0-9+$"`, 1),
	} {
		if _, err := ParseSettings([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseSettings(f *testing.F) {
	f.Add(defaultSettingsJSON)
	f.Add([]byte("oci_versions = [\"1\"]\n[pause]\nsource = \"p\"\nargs = [\"/p\"]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSettings(b)
		if err != nil {
			return
		}
		_, _ = s.Enabled(nil)
	})
}
