package generate

import (
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The forms of the values the kubelet gives an env var from the downward
// API when the YAML cannot say the value itself (unanchored regexes).
const (
	// dnsLabel is a namespace name (RFC 1123 label, as the API server
	// validates namespaces).
	dnsLabel = `[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?`
	// dnsSubdomain is a node name (the API server validates node names
	// as DNS subdomains); its 253-character bound is not checked.
	dnsSubdomain = dnsLabel + `(\.` + dnsLabel + `)*`
	// uuid is metadata.uid: the API server gives every object a random
	// UUID, printed in lower case.
	uuid = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	// ipAddr is one address as Go's net.IP prints it: dotted IPv4 whose
	// first byte is not 0, or IPv6 in hex groups (the compressed "::"
	// form too; a few impossible spellings also match).
	ipAddr = `((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]?)(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}|[0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7})`
	// ipList is status.podIPs or status.hostIPs: the kubelet joins the
	// addresses with ",", one per IP family at most.
	ipList = ipAddr + `(,` + ipAddr + `)?`
	// quantity is a resourceFieldRef: the kubelet divides the limit or
	// request (the node's allocatable for a limit not set) by the divisor,
	// rounds up and prints the integer.
	quantity = `[0-9]+`
)

// downward is what the policy can say about the value of an env var the
// kubelet fills from the pod's fields or the container's resources: the
// value itself when the YAML says it (known), else the form every value
// has (pattern), else nothing, and only the name is pinned.
type downward struct {
	value   string
	known   bool
	pattern string
}

// downwardValue decides, for each field, as tightly as the YAML and the
// generation options allow. Kata's genpolicy (src/tools/genpolicy at
// 4.1.0) is the reference; where it differs, the comment says why.
func (b *builder) downwardValue(w *Workload, src *corev1.EnvVarSource) downward {
	if src.ResourceFieldRef != nil {
		// genpolicy allows any value ("$(resource-field)", src/pod.rs:895-899,
		// rules.rego:1037-1054). The limit may come from a LimitRange or
		// the node, which the YAML does not say, but it is always a number.
		return downward{pattern: quantity}
	}
	path := src.FieldRef.FieldPath
	switch path {
	case "metadata.name":
		// genpolicy matches the value with the pod name regex
		// ("$(sandbox-name)", src/pod.rs:917, rules.rego:960-978). A Pod
		// with a fixed name has that name; a controller's or a
		// generateName pod only the form of its names.
		if w.Kind == "Pod" && w.Name != "" {
			return downward{value: w.Name, known: true}
		}
		return downward{pattern: strings.TrimSuffix(strings.TrimPrefix(w.PodName, "^"), "$")}
	case "metadata.namespace":
		// genpolicy: the namespace given, else the request's namespace
		// annotation (src/pod.rs:918-924, rules.rego:1056-1064). We pin
		// the --namespace value; without it the env check has no
		// annotation to compare with in an exec, so only the form.
		if b.data.Namespace != "" {
			return downward{value: b.data.Namespace, known: true}
		}
		return downward{pattern: dnsLabel}
	case "metadata.uid":
		// genpolicy allows any value ("$(pod-uid)", src/pod.rs:925,
		// rules.rego:1006-1023).
		return downward{pattern: uuid}
	case "spec.nodeName":
		// genpolicy allows any value ("$(node-name)", src/pod.rs:928,
		// rules.rego:1006-1023); a pod that names its node runs there.
		if w.Spec.NodeName != "" {
			return downward{value: w.Spec.NodeName, known: true}
		}
		return downward{pattern: dnsSubdomain}
	case "spec.serviceAccountName":
		// As genpolicy: the spec's, else "default" (src/pod.rs:929,
		// src/policy.rs:1003-1007), which the ServiceAccount admission
		// plugin sets. The deprecated serviceAccount field is copied into
		// serviceAccountName by the API server's defaulting.
		switch {
		case w.Spec.ServiceAccountName != "":
			return downward{value: w.Spec.ServiceAccountName, known: true}
		case w.Spec.DeprecatedServiceAccount != "":
			return downward{value: w.Spec.DeprecatedServiceAccount, known: true}
		}
		return downward{value: "default", known: true}
	case "status.podIP", "status.hostIP":
		// genpolicy accepts IPv4 only (is_ip, rules.rego:994-1004,
		// 1025-1035, 1090-1108); dual-stack and IPv6 clusters give IPv6.
		return downward{pattern: ipAddr}
	case "status.podIPs":
		// genpolicy does not know the lists (it panics on them,
		// src/pod.rs:930-940); the kubelet joins the addresses with ",".
		return downward{pattern: ipList}
	case "status.hostIPs":
		// Empty when the kubelet's PodHostIPs feature gate is off.
		return downward{pattern: "(" + ipList + ")?"}
	}
	// metadata.labels['k'] and metadata.annotations['k']: the YAML's value,
	// as genpolicy (src/pod.rs:949-995). A key the YAML does not set (a
	// label a controller adds, such as pod-template-hash, or an annotation
	// a webhook adds) is pinned by name only: genpolicy allows any value
	// for such an annotation ("$(todo-annotation)", src/pod.rs:965-973) and
	// refuses to generate for such a label (src/pod.rs:990). The value is
	// the pod's at the container's start, so a label changed on the running
	// pod is denied after a restart.
	if k, ok := subscript(path, "metadata.labels"); ok {
		if v, ok := w.Labels[k]; ok {
			return downward{value: v, known: true}
		}
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		if v, ok := w.Annotations[k]; ok {
			return downward{value: v, known: true}
		}
	}
	return downward{}
}

// envPattern is the regex of name=value for a value of the form pattern.
func envPattern(name, pattern string) string {
	return "^" + regexp.QuoteMeta(name) + "=(" + pattern + ")$"
}

// subscript reads a downward API path with a key, field['key'] (the form
// the API server accepts, k8s.io/apimachinery fieldpath
// SplitMaybeSubscriptedPath), and returns the key.
func subscript(path, field string) (string, bool) {
	rest, ok := strings.CutPrefix(path, field+"['")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "']")
	if !ok {
		return "", false
	}
	return key, true
}
