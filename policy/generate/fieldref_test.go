package generate

import (
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// fieldValue is the value the kubelet gives an env var's fieldRef in the
// mini runtime's pod (kubernetes pkg/kubelet/kubelet_pods.go,
// podFieldSelectorRuntimeValue, then fieldpath.ExtractFieldPathAsString
// for metadata): the pod's name and namespace, a UUID the API server
// assigned, the node it was scheduled to, its service account (the
// ServiceAccount admission plugin's "default" when the spec names none),
// its and the node's addresses (the lists joined with ","), and its own
// labels and annotations.
func (rt *miniRuntime) fieldValue(w *Workload, pod, path string) string {
	switch path {
	case "metadata.name":
		return pod
	case "metadata.namespace":
		return rt.ns()
	case "metadata.uid":
		return "3f6c1a2e-8b4d-4e7a-9c1f-2d5b6a7e8f90"
	case "spec.nodeName":
		if w.Spec.NodeName != "" {
			return w.Spec.NodeName
		}
		return "worker-2.cluster.example"
	case "spec.serviceAccountName":
		if w.Spec.ServiceAccountName != "" {
			return w.Spec.ServiceAccountName
		}
		return "default"
	case "status.podIP":
		return "10.244.1.7"
	case "status.podIPs":
		return "10.244.1.7,fd00:10:244:1::7"
	case "status.hostIP":
		return "192.168.10.21"
	case "status.hostIPs":
		return "192.168.10.21,2001:db8:0:10::21"
	}
	if k, ok := subscript(path, "metadata.labels"); ok {
		return w.Labels[k]
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return w.Annotations[k]
	}
	rt.t.Fatalf("mini runtime: no value for fieldRef %q", path)
	return ""
}

// downwardPod reads every field the downward API gives env vars.
const downwardPod = `apiVersion: v1
kind: Pod
metadata:
  name: downward
  labels: {app: shop, tier: web}
  annotations: {team: payments}
spec:
  serviceAccountName: shop-sa
  containers:
  - name: app
    image: app-image
    resources:
      limits: {memory: 128Mi}
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
    - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: POD_IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: HOST_IPS, valueFrom: {fieldRef: {fieldPath: status.hostIPs}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: TEAM, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['team']"}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory}}}
`

// setEnv replaces the value of name in the request's environment.
func setEnv(t testing.TB, req *agentpb.CreateContainerRequest, name, value string) {
	t.Helper()
	for i, e := range req.OCI.Process.Env {
		if strings.HasPrefix(e, name+"=") {
			req.OCI.Process.Env[i] = name + "=" + value
			return
		}
	}
	t.Fatalf("fixture: the request has no %s", name)
}

// TestFieldRefEnvPinned: an env var from the downward API gets its value
// from the kubelet, which the host controls, so the policy pins it as
// tightly as the YAML allows (genpolicy pins most of them too:
// src/tools/genpolicy/src/pod.rs:907-995, rules.rego:953-1108 at Kata
// 4.1.0). The runtime's request is allowed; a value the kubelet could not
// have given is denied, naming OCI.Process.Env.
func TestFieldRefEnvPinned(t *testing.T) {
	bad := map[string]string{
		"POD_NAME":      "other-pod",
		"POD_NAMESPACE": "Not_A_Label",
		"POD_UID":       "../../etc",
		"NODE_NAME":     "node;reboot",
		"SA":            "cluster-admin",
		"POD_IP":        "10.244.1.7 --inject",
		"POD_IPS":       "10.244.1.7,evil",
		"HOST_IP":       "256.1.1.1",
		"HOST_IPS":      "192.168.10.21,10.0.0.1,10.0.0.2",
		"APP":           "shop-admin",
		"TEAM":          "ops",
		"MEM":           "128Mi; rm -rf /",
	}
	for _, ns := range []string{"", "team-a"} {
		_, text := buildFake(t, downwardPod, ns)
		in, err := ParseInput([]byte(downwardPod), defaults(t).PassThrough)
		if err != nil {
			t.Fatal(err)
		}
		rt := &miniRuntime{t: t, in: in, images: fakeImages(in), namespace: ns, runDir: "/run/kata-containers"}
		w := in.Workloads[0]
		q := prepareCreate(t, text)
		if allowed, problems := decideCreate(t, q, rt.request(w, rt.podName(w), w.Spec.Containers[0])); !allowed {
			t.Fatalf("namespace %q: the runtime's request is denied: %v", ns, problems)
		}
		for name, v := range bad {
			req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
			setEnv(t, req, name, v)
			allowed, problems := decideCreate(t, q, req)
			if allowed || len(problems) != 1 || !strings.Contains(problems[0], "OCI.Process.Env") {
				t.Errorf("namespace %q: %s=%q: allowed %v, problems %q do not name OCI.Process.Env", ns, name, v, allowed, problems)
			}
		}
	}
	// With --namespace the namespace is known: another DNS label is denied.
	_, text := buildFake(t, downwardPod, "team-a")
	in, err := ParseInput([]byte(downwardPod), defaults(t).PassThrough)
	if err != nil {
		t.Fatal(err)
	}
	rt := &miniRuntime{t: t, in: in, images: fakeImages(in), namespace: "team-a", runDir: "/run/kata-containers"}
	w := in.Workloads[0]
	req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
	setEnv(t, req, "POD_NAMESPACE", "team-b")
	if allowed, problems := decideCreate(t, prepareCreate(t, text), req); allowed || !strings.Contains(strings.Join(problems, ";"), "OCI.Process.Env") {
		t.Errorf("POD_NAMESPACE=team-b under --namespace team-a: allowed %v, problems %q", allowed, problems)
	}
}

// deploymentDownward is a Deployment whose pod names get a suffix.
const deploymentDownward = `apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
      - name: app
        image: app-image
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: HASH, valueFrom: {fieldRef: {fieldPath: "metadata.labels['pod-template-hash']"}}}
`

// TestFieldRefEnvController: a controller's pod name is not known, only
// its form: a name the Deployment could give is allowed, one of another
// workload is denied. A label the controller adds (pod-template-hash) has
// no value in the YAML and stays pinned by name.
func TestFieldRefEnvController(t *testing.T) {
	text, rt := fakeRuntime(t, deploymentDownward)
	w := rt.in.Workloads[0]
	q := prepareCreate(t, text)
	req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
	setEnv(t, req, "HASH", "5d8f9c7b4")
	if allowed, problems := decideCreate(t, q, req); !allowed {
		t.Fatalf("the runtime's request is denied: %v", problems)
	}
	setEnv(t, req, "POD_NAME", "billing-5d8f9c7b4-x2k9p")
	if allowed, problems := decideCreate(t, q, req); allowed || len(problems) != 1 || !strings.Contains(problems[0], "OCI.Process.Env") {
		t.Errorf("POD_NAME of another workload: allowed %v, problems %q", allowed, problems)
	}
}

// FuzzSubscript: a key is read only from the exact field['key'] form, and
// the path is that form around the key.
func FuzzSubscript(f *testing.F) {
	f.Add("metadata.labels['app']")
	f.Add("metadata.labels['']")
	f.Add("metadata.annotations['a']']")
	f.Add("metadata.labels")
	f.Fuzz(func(t *testing.T, path string) {
		k, ok := subscript(path, "metadata.labels")
		if ok && "metadata.labels['"+k+"']" != path {
			t.Fatalf("%q: key %q", path, k)
		}
		if !ok && k != "" {
			t.Fatalf("%q: no key, but %q", path, k)
		}
	})
}

// downwardArgsPod refers in its args to env vars from the downward API:
// POD_IP's value is known only by form, POD_NAME's exactly. "$$" is a
// literal "$", and a reference to a name the container does not define
// stays as written (the kubelet's expansion:
// third_party/forked/golang/expansion/expand.go Expand and
// tryReadVariableName, applied with the container's whole environment by
// pkg/kubelet/container/helpers.go ExpandContainerCommandAndArgs).
const downwardArgsPod = `apiVersion: v1
kind: Pod
metadata: {name: etcd}
spec:
  containers:
  - name: app
    image: app-image
    command: ["/bin/server"]
    args:
    - "--advertise-address=$(POD_IP)"
    - "--name=$(POD_NAME)"
    - "--peers=$(POD_IP):2380,$(HOST_IP):2380"
    - "--literal=$$(POD_IP)"
    - "--undefined=$(NOT_SET)"
    - "--uid=$(POD_UID)"
    - "--plain"
    - "--url=$(URL)"
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: URL, value: "http://$(POD_IP):2379"}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
`

// TestDownwardEnvInArgs: an arg that refers to a downward-API env var
// whose value is known only by form gets the kubelet's value, so the
// policy allows any value of that form there (the runtime's request is
// allowed) and nothing else: another value, the reference left
// unexpanded, or an escaped or undefined reference expanded is denied,
// naming OCI.Process.Args.
func TestDownwardEnvInArgs(t *testing.T) {
	text, rt := fakeRuntime(t, downwardArgsPod)
	w := rt.in.Workloads[0]
	q := prepareCreate(t, text)
	req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
	if got := req.OCI.Process.Args[1]; got != "--advertise-address=10.244.1.7" {
		t.Fatalf("fixture: the runtime's arg is %q", got)
	}
	if allowed, problems := decideCreate(t, q, req); !allowed {
		t.Fatalf("the runtime's request is denied: %v", problems)
	}
	// Another address of the form is what another pod IP gives.
	req.OCI.Process.Args[1] = "--advertise-address=fd00:10:244:1::9"
	if allowed, problems := decideCreate(t, q, req); !allowed {
		t.Fatalf("an IPv6 pod IP is denied: %v", problems)
	}
	bad := map[int]string{
		1: "--advertise-address=10.0.0.1 --inject",
		2: "--name=other",
		3: "--peers=10.244.1.7:2380,evil:2380",
		4: "--literal=10.244.1.7",
		5: "--undefined=",
		6: "--uid=../../etc",
		7: "--plain2",
		8: "--url=http://evil:2379",
	}
	for i, v := range bad {
		req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
		req.OCI.Process.Args[i] = v
		allowed, problems := decideCreate(t, q, req)
		if allowed || len(problems) != 1 || !strings.Contains(problems[0], "OCI.Process.Args") {
			t.Errorf("arg %d = %q: allowed %v, problems %q do not name OCI.Process.Args", i, v, allowed, problems)
		}
	}
	// An env value that refers to POD_IP has its form too.
	req = rt.request(w, rt.podName(w), w.Spec.Containers[0])
	setEnv(t, req, "URL", "http://evil:2379")
	if allowed, problems := decideCreate(t, q, req); allowed || len(problems) != 1 || !strings.Contains(problems[0], "OCI.Process.Env") {
		t.Errorf("URL=http://evil:2379: allowed %v, problems %q do not name OCI.Process.Env", allowed, problems)
	}
	// The reference unexpanded is not what the kubelet sends.
	req = rt.request(w, rt.podName(w), w.Spec.Containers[0])
	req.OCI.Process.Args[1] = "--advertise-address=$(POD_IP)"
	if allowed, _ := decideCreate(t, q, req); allowed {
		t.Error("the unexpanded reference is allowed")
	}
	// An arg added or dropped.
	req = rt.request(w, rt.podName(w), w.Spec.Containers[0])
	req.OCI.Process.Args = append(req.OCI.Process.Args, "--extra")
	if allowed, _ := decideCreate(t, q, req); allowed {
		t.Error("an extra arg is allowed")
	}
	req.OCI.Process.Args = req.OCI.Process.Args[:len(req.OCI.Process.Args)-2]
	if allowed, _ := decideCreate(t, q, req); allowed {
		t.Error("a dropped arg is allowed")
	}
}

// deploymentSandboxEnv gives the pod's name and namespace to a
// Deployment's container, whose pod name is known only by form, without
// --namespace; its probe runs through ExecProcess.
const deploymentSandboxEnv = `apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  template:
    spec:
      containers:
      - name: app
        image: app-image
        livenessProbe: {exec: {command: ["/bin/check"]}}
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
`

// TestFieldRefEnvMatchesSandbox: in a CreateContainer the pod's name and
// namespace from the downward API are the request's own
// io.kubernetes.cri.sandbox-name and sandbox-namespace (genpolicy compares
// the namespace with the annotation: rules.rego:1060-1068, allow_var 8,
// at Kata 4.1.0), not any value of their form. ExecProcess carries no
// annotations: its env keeps the form check, and the runtime's exec is
// allowed.
func TestFieldRefEnvMatchesSandbox(t *testing.T) {
	text, rt := fakeRuntime(t, deploymentSandboxEnv)
	w := rt.in.Workloads[0]
	q := prepareCreate(t, text)
	pod := rt.podName(w)
	req := rt.request(w, pod, w.Spec.Containers[0])
	if allowed, problems := decideCreate(t, q, req); !allowed {
		t.Fatalf("the runtime's request is denied: %v", problems)
	}
	if d := decideExec(t, text, runtimeExec(req, []string{"/bin/check"}, false)); !d.Allowed {
		t.Fatalf("the runtime's exec is denied: %v", d)
	}
	for name, v := range map[string]string{
		// Another pod of the same Deployment: the right form.
		"POD_NAME":      "shop-5d8f9c7b4-zzzzz",
		"POD_NAMESPACE": "kube-system",
	} {
		req := rt.request(w, pod, w.Spec.Containers[0])
		setEnv(t, req, name, v)
		allowed, problems := decideCreate(t, q, req)
		if allowed || len(problems) != 1 || !strings.Contains(problems[0], "OCI.Process.Env") {
			t.Errorf("%s=%q beside the annotations %q: allowed %v, problems %q do not name OCI.Process.Env", name, v, pod, allowed, problems)
		}
	}
}
