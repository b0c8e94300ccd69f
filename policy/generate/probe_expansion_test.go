package generate

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/cocoon-tee/cocoon/policy/input"
)

// probedEnvPod has exec probes and hooks with $(VAR) references: a
// literal value (DATA_DIR), one from the downward API (POD), one whose
// value itself has a reference (NESTED), one not defined (NOPE), an escaped one and an unclosed one.
const probedEnvPod = `apiVersion: v1
kind: Pod
metadata: {name: probed-env}
spec:
  containers:
  - name: app
    image: app-image
    env:
    - {name: DATA_DIR, value: /data}
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - {name: NESTED, value: "$(DATA_DIR)/sub"}
    readinessProbe:
      exec: {command: ["sh", "-c", "test -f $(DATA_DIR)/ready"]}
    livenessProbe:
      exec: {command: ["check", "$(POD)", "$(NESTED)", "$(NOPE)", "$$(DATA_DIR)", "$(DATA_DIR"]}
    lifecycle:
      preStop:
        exec: {command: ["sh", "-c", "rm $(DATA_DIR)/ready"]}
`

// TestExecProbeExpandedStatic: the kubelet runs an exec probe's command
// after expanding it with the container's static env only
// (pkg/kubelet/prober/prober.go runProbe calls
// kubecontainer.ExpandContainerCommandOnlyStatic; pkg/kubelet/container/
// helpers.go maps every spec env name to its literal Value, "" for a
// valueFrom one, and expands with expansion.Expand), while it runs a
// lifecycle hook's as written (pkg/kubelet/lifecycle/handlers.go
// handlerRunner.Run passes handler.Exec.Command to RunInContainer). The
// command the runtime sends is allowed; the other form, or another
// command, is denied naming process.Args.
func TestExecProbeExpandedStatic(t *testing.T) {
	p := loadFake(t, probedEnvPod)
	in, err := ParseInput([]byte(probedEnvPod), defaults(t).PassThrough)
	if err != nil {
		t.Fatal(err)
	}
	rt := &miniRuntime{t: t, in: in, images: fakeImages(in), runDir: "/run/kata-containers"}
	w := in.Workloads[0]
	app := rt.request(w, rt.podName(w), w.Spec.Containers[0])
	decide := func(args []string) (bool, string) {
		d := decideDoc(t, p, "ExecProcessRequest", input.Encode(runtimeExec(app, args, false)))
		return d.Allowed, d.Prints
	}

	allowed := map[string][]string{
		"readiness probe, expanded": {"sh", "-c", "test -f /data/ready"},
		"liveness probe, expanded":  {"check", "", "$(DATA_DIR)/sub", "$(NOPE)", "$(DATA_DIR)", "$(DATA_DIR"},
		"preStop hook, as written":  {"sh", "-c", "rm $(DATA_DIR)/ready"},
	}
	for name, args := range allowed {
		if ok, why := decide(args); !ok {
			t.Errorf("%s %q: denied: %s", name, args, why)
		}
	}
	denied := map[string][]string{
		"readiness probe, as written":     {"sh", "-c", "test -f $(DATA_DIR)/ready"},
		"readiness probe, other value":    {"sh", "-c", "test -f /other/ready"},
		"liveness probe, as written":      {"check", "$(POD)", "$(NESTED)", "$(NOPE)", "$$(DATA_DIR)", "$(DATA_DIR"},
		"liveness probe, pod name given":  {"check", "probed-env", "$(DATA_DIR)/sub", "$(NOPE)", "$(DATA_DIR)", "$(DATA_DIR"},
		"liveness probe, nested expanded": {"check", "", "/data/sub", "$(NOPE)", "$(DATA_DIR)", "$(DATA_DIR"},
		"preStop hook, expanded":          {"sh", "-c", "rm /data/ready"},
	}
	for name, args := range denied {
		if ok, why := decide(args); ok || !strings.Contains(why, "process.Args:") {
			t.Errorf("%s %q: allowed %v, denial %q does not name process.Args", name, args, ok, why)
		}
	}
}

// TestKubeletProbeCommand: the replay's double of the kubelet expands
// probe commands and leaves hook commands alone.
func TestKubeletProbeCommand(t *testing.T) {
	in, err := ParseInput([]byte(probedEnvPod), defaults(t).PassThrough)
	if err != nil {
		t.Fatal(err)
	}
	got := execCommands(in.Workloads[0].Spec.Containers[0])
	want := [][]string{
		{"check", "", "$(DATA_DIR)/sub", "$(NOPE)", "$(DATA_DIR)", "$(DATA_DIR"},
		{"sh", "-c", "test -f /data/ready"},
		{"sh", "-c", "rm $(DATA_DIR)/ready"},
	}
	if len(got) != len(want) {
		t.Fatalf("commands %q, want %q", got, want)
	}
	for i := range want {
		if strings.Join(got[i], "\x00") != strings.Join(want[i], "\x00") {
			t.Errorf("command %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// FuzzProbeCommand: the generator's probe command is the replay's
// kubelet double's, for any word; the env has a name set twice (the last
// wins) and one from valueFrom (expands to "").
func FuzzProbeCommand(f *testing.F) {
	env := []corev1.EnvVar{
		{Name: "A", Value: "first"}, {Name: "A", Value: "last"},
		{Name: "B", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "C", Value: "$(A)"},
	}
	for _, s := range []string{"$(A)", "x$(B)y", "$(C)", "$$(A)", "$(A", "$", "a$b", "$()", "$(A)$(NOPE)$$$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := probeCommand([]string{s}, env)
		want := kubeletStaticCommand([]string{s}, env)
		if got[0] != want[0] {
			t.Errorf("%q: %q, the kubelet's %q", s, got[0], want[0])
		}
	})
	if got := probeCommand([]string{"$(A)/$(B)/$(C)"}, env)[0]; got != "last//$(A)" {
		f.Errorf("last-wins/valueFrom/nested: %q", got)
	}
}
