package generate

import (
	"maps"
	"strings"
	"testing"
)

// gpuPod asks for two passthrough GPUs in one container and none in the
// other, as Kata's createcontainer/gpu_vfio_cdi pod.yaml does
// (src/tools/genpolicy/tests/policy/testdata at 4.1.0).
const gpuPod = `apiVersion: v1
kind: Pod
metadata: {name: gpu}
spec:
  containers:
  - name: cuda
    image: app-image
    resources:
      limits: {nvidia.com/pgpu: "2"}
  - name: plain
    image: app-image
`

// TestCDIAnnotations: a cdi.k8s.io/* annotation asks the runtime for a
// device (Kata's runtime cold-plugs or hot-plugs a GPU for it). The
// container that asks for two GPUs may carry two, of the form genpolicy
// allows (genpolicy-settings.json devices.vfio, rules.rego:586-599 at
// 4.1.0); fewer, more, another form, or any on a container that asks for
// none are denied, naming OCI.Annotations.
func TestCDIAnnotations(t *testing.T) {
	text, rt := fakeRuntime(t, gpuPod)
	w := rt.in.Workloads[0]
	pod := rt.podName(w)
	q := prepareCreate(t, text)
	two := map[string]string{"cdi.k8s.io/vfio1": "nvidia.com/gpu=0", "cdi.k8s.io/vfio2": "nvidia.com/gpu=1"}
	decide := func(container int, cdi map[string]string) (bool, []string) {
		req := rt.request(w, pod, w.Spec.Containers[container])
		maps.Copy(req.OCI.Annotations, cdi)
		return decideCreate(t, q, req)
	}
	if allowed, problems := decide(0, two); !allowed {
		t.Fatalf("two GPUs for the container that asks for two: denied: %v", problems)
	}
	if allowed, problems := decide(1, nil); !allowed {
		t.Fatalf("no GPU for the container that asks for none: denied: %v", problems)
	}
	denied := []struct {
		name      string
		container int
		cdi       map[string]string
	}{
		{"none of two", 0, nil},
		{"one of two", 0, map[string]string{"cdi.k8s.io/vfio1": "nvidia.com/gpu=0"}},
		{"three of two", 0, map[string]string{"cdi.k8s.io/vfio1": "nvidia.com/gpu=0", "cdi.k8s.io/vfio2": "nvidia.com/gpu=1", "cdi.k8s.io/vfio3": "nvidia.com/gpu=2"}},
		{"key not vfio<n>", 0, map[string]string{"cdi.k8s.io/vfio1": "nvidia.com/gpu=0", "cdi.k8s.io/vfioABC": "nvidia.com/gpu=1"}},
		{"value of another form", 0, map[string]string{"cdi.k8s.io/vfio1": "invalid-format", "cdi.k8s.io/vfio2": "nvidia.com/gpu=1"}},
		{"a GPU for a container without", 1, map[string]string{"cdi.k8s.io/vfio1": "nvidia.com/gpu=0"}},
		{"another CDI device", 1, map[string]string{"cdi.k8s.io/net": "vendor.example/nic=eth1"}},
	}
	for _, c := range denied {
		allowed, problems := decide(c.container, c.cdi)
		if allowed || len(problems) != 1 || !strings.Contains(problems[0], "OCI.Annotations") {
			t.Errorf("%s: allowed %v, problems %q do not name OCI.Annotations", c.name, allowed, problems)
		}
	}
	// The pause container asks for no device.
	req := rt.pause(w, pod)
	req.OCI.Annotations["cdi.k8s.io/vfio1"] = "nvidia.com/gpu=0"
	if allowed, problems := decideCreate(t, q, req); allowed || !strings.Contains(strings.Join(problems, ";"), "OCI.Annotations") {
		t.Errorf("a GPU for the pause container: allowed %v, problems %q", allowed, problems)
	}
}
