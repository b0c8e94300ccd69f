package generate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// MaxInputSize bounds the YAML read at once.
const MaxInputSize = 16 << 20

// Workload is one pod template found in the input.
type Workload struct {
	// Kind and Name are the owning object's.
	Kind, Name string
	// Spec is the pod spec, decoded with k8s.io/api types.
	Spec corev1.PodSpec
	// PodName is a regex for the names the pods it makes will get.
	PodName string
	// Labels and Annotations are the pod's (a controller's pod template's)
	// metadata, the values a fieldRef env var may read.
	Labels, Annotations map[string]string
	// generateName is a Pod's metadata.generateName.
	generateName string
	// tree is the generic form of the object, edited when images are
	// rewritten and initdata is injected; specPath leads to its pod spec.
	tree     map[string]any
	specPath []string
}

// Input is a parsed YAML stream.
type Input struct {
	Workloads  []*Workload
	ConfigMaps map[string]*corev1.ConfigMap
	Secrets    map[string]*corev1.Secret
	docs       []document
}

// document is one YAML document: kept as its raw bytes when it passes
// through, as a generic tree when it holds workloads.
type document struct {
	raw  []byte
	tree map[string]any
}

// typeMeta is read first to route a document by kind.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// specPaths say where each workload kind keeps its pod spec.
var specPaths = map[string][]string{
	"Pod":                   {"spec"},
	"Deployment":            {"spec", "template", "spec"},
	"ReplicaSet":            {"spec", "template", "spec"},
	"ReplicationController": {"spec", "template", "spec"},
	"StatefulSet":           {"spec", "template", "spec"},
	"DaemonSet":             {"spec", "template", "spec"},
	"Job":                   {"spec", "template", "spec"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template", "spec"},
}

// ParseInput reads a multi-document YAML stream. passThrough names the kinds
// copied unchanged; any other kind that is not a workload, List, ConfigMap
// or Secret is an error naming it.
func ParseInput(b []byte, passThrough []string) (*Input, error) {
	if len(b) > MaxInputSize {
		return nil, fmt.Errorf("input: %d bytes exceeds %d", len(b), MaxInputSize)
	}
	in := &Input{ConfigMaps: map[string]*corev1.ConfigMap{}, Secrets: map[string]*corev1.Secret{}}
	for i, raw := range splitDocuments(b) {
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		tree, err := in.add(raw, passThrough, fmt.Sprintf("document %d", i+1))
		if err != nil {
			return nil, err
		}
		in.docs = append(in.docs, document{raw: raw, tree: tree})
	}
	if len(in.Workloads) == 0 {
		return nil, fmt.Errorf("input: no workload (Pod, Deployment, ...) found")
	}
	return in, nil
}

// add routes one object. It returns the object's generic tree when the
// object (or a List item) holds a workload, nil when it passes through.
func (in *Input) add(raw []byte, passThrough []string, where string) (map[string]any, error) {
	j, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var tm typeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, fmt.Errorf("%s: not a Kubernetes object: %w", where, err)
	}
	switch {
	case tm.Kind == "":
		return nil, fmt.Errorf("%s: no kind", where)
	case tm.Kind == "List":
		return in.addList(j, passThrough, where)
	case tm.Kind == "ConfigMap":
		var cm corev1.ConfigMap
		if err := json.Unmarshal(j, &cm); err != nil {
			return nil, fmt.Errorf("%s: ConfigMap: %w", where, err)
		}
		in.ConfigMaps[cm.Name] = &cm
		return nil, nil
	case tm.Kind == "Secret":
		var s corev1.Secret
		if err := json.Unmarshal(j, &s); err != nil {
			return nil, fmt.Errorf("%s: Secret: %w", where, err)
		}
		in.Secrets[s.Name] = &s
		return nil, nil
	case specPaths[tm.Kind] != nil:
		var tree map[string]any
		if err := json.Unmarshal(j, &tree); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		w, err := decodeWorkload(tm.Kind, j)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", where, tm.Kind, err)
		}
		w.tree, w.specPath = tree, specPaths[tm.Kind]
		in.Workloads = append(in.Workloads, w)
		return tree, nil
	case slices.Contains(passThrough, tm.Kind):
		return nil, nil
	default:
		return nil, fmt.Errorf("%s: kind %q (apiVersion %q) is not supported: it is not a workload, and not a pass-through kind (add it to pass_through_kinds in the settings if it runs no pod)", where, tm.Kind, tm.APIVersion)
	}
}

// addList handles a List: each item is routed like a document; the List
// keeps its generic tree so rewritten items are written back in place.
func (in *Input) addList(j []byte, passThrough []string, where string) (map[string]any, error) {
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(j, &list); err != nil {
		return nil, fmt.Errorf("%s: List: %w", where, err)
	}
	var tree map[string]any
	if err := json.Unmarshal(j, &tree); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	items, _ := tree["items"].([]any)
	holds := false
	for i, item := range list.Items {
		t, err := in.add(item, passThrough, fmt.Sprintf("%s item %d", where, i+1))
		if err != nil {
			return nil, err
		}
		if t != nil && i < len(items) {
			// The workload edits its own tree; make the List hold it.
			items[i] = t
			holds = true
		}
	}
	if !holds {
		return nil, nil
	}
	return tree, nil
}

// decodeWorkload decodes the typed object and takes its pod template.
func decodeWorkload(kind string, j []byte) (*Workload, error) {
	w := &Workload{Kind: kind}
	var meta metav1.ObjectMeta // the pod's metadata
	switch kind {
	case "Pod":
		var o corev1.Pod
		if err := json.Unmarshal(j, &o); err != nil {
			return nil, err
		}
		w.Name, w.Spec, w.generateName = o.Name, o.Spec, o.GenerateName
		meta = o.ObjectMeta
		w.PodName = exactName(o.Name, o.GenerateName)
	case "Deployment":
		var o appsv1.Deployment
		if err := json.Unmarshal(j, &o); err != nil {
			return nil, err
		}
		// <deployment>-<pod-template-hash>-<5 random>
		w.Name, w.Spec, w.PodName = o.Name, o.Spec.Template.Spec, "^"+quote(o.Name)+"-[a-z0-9]{1,10}-[a-z0-9]{5}$"
		meta = o.Spec.Template.ObjectMeta
	case "ReplicaSet":
		var o appsv1.ReplicaSet
		if err := json.Unmarshal(j, &o); err != nil {
			return nil, err
		}
		w.Name, w.Spec, w.PodName = o.Name, o.Spec.Template.Spec, randomSuffix(o.Name)
		meta = o.Spec.Template.ObjectMeta
	case "ReplicationController":
		var o corev1.ReplicationController
		if err := json.Unmarshal(j, &o); err != nil {
			return nil, err
		}
		if o.Spec.Template == nil {
			return nil, fmt.Errorf("%s has no pod template", o.Name)
		}
		w.Name, w.Spec, w.PodName = o.Name, o.Spec.Template.Spec, randomSuffix(o.Name)
		meta = o.Spec.Template.ObjectMeta
	case "StatefulSet":
		var o appsv1.StatefulSet
		if err := json.Unmarshal(j, &o); err != nil {
			return nil, err
		}
		w.Name, w.Spec, w.PodName = o.Name, o.Spec.Template.Spec, "^"+quote(o.Name)+"-[0-9]+$"
		meta = o.Spec.Template.ObjectMeta
		addClaimVolumes(&w.Spec, o.Spec.VolumeClaimTemplates)
	case "DaemonSet":
		var o appsv1.DaemonSet
		if err := json.Unmarshal(j, &o); err != nil {
			return nil, err
		}
		w.Name, w.Spec, w.PodName = o.Name, o.Spec.Template.Spec, randomSuffix(o.Name)
		meta = o.Spec.Template.ObjectMeta
	case "Job":
		var o batchv1.Job
		if err := json.Unmarshal(j, &o); err != nil {
			return nil, err
		}
		w.Name, w.Spec, w.PodName = o.Name, o.Spec.Template.Spec, randomSuffix(o.Name)
		meta = o.Spec.Template.ObjectMeta
	case "CronJob":
		var o batchv1.CronJob
		if err := json.Unmarshal(j, &o); err != nil {
			return nil, err
		}
		// <cronjob>-<scheduled minute>-<5 random>
		w.Name, w.Spec, w.PodName = o.Name, o.Spec.JobTemplate.Spec.Template.Spec, "^"+quote(o.Name)+"-[0-9]+-[a-z0-9]{5}$"
		meta = o.Spec.JobTemplate.Spec.Template.ObjectMeta
	}
	w.Labels, w.Annotations = meta.Labels, meta.Annotations
	if w.Name == "" && w.PodName == "" {
		return nil, fmt.Errorf("metadata.name is empty")
	}
	if len(w.Spec.Containers) == 0 {
		return nil, fmt.Errorf("%s has no containers", w.Name)
	}
	return w, nil
}

func exactName(name, generate string) string {
	if name == "" && generate != "" {
		return "^" + quote(generate) + "[a-z0-9]{5}$"
	}
	return "^" + quote(name) + "$"
}

func randomSuffix(name string) string { return "^" + quote(name) + "-[a-z0-9]{5}$" }

// quote escapes a Kubernetes name for a regex (names hold only [a-z0-9.-]).
func quote(s string) string { return strings.ReplaceAll(s, ".", `\.`) }

// splitDocuments splits a YAML stream at "---" lines.
func splitDocuments(b []byte) [][]byte {
	var out [][]byte
	var cur []byte
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		t := bytes.TrimRight(line, " \t\r\n")
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) {
			out = append(out, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	return append(out, cur)
}

// stripComments drops comment-only lines, so a document of comments is
// seen as empty.
func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// Output renders the YAML stream again: pass-through documents byte for
// byte, workload documents from their (possibly rewritten) trees.
func (in *Input) Output() ([]byte, error) {
	var buf bytes.Buffer
	for i, d := range in.docs {
		if i > 0 {
			buf.WriteString("---\n")
		}
		if d.tree == nil {
			buf.Write(bytes.TrimLeft(d.raw, "\n"))
			if len(d.raw) > 0 && d.raw[len(d.raw)-1] != '\n' {
				buf.WriteByte('\n')
			}
			continue
		}
		y, err := yaml.Marshal(d.tree)
		if err != nil {
			return nil, err
		}
		buf.Write(y)
	}
	return buf.Bytes(), nil
}

// podSpecTree is the generic pod spec of w.
func (w *Workload) podSpecTree() map[string]any {
	cur := w.tree
	for _, k := range w.specPath {
		next, _ := cur[k].(map[string]any)
		if next == nil {
			return nil
		}
		cur = next
	}
	return cur
}

// setImage rewrites every container image equal to from to to.
func (w *Workload) setImage(from, to string) {
	spec := w.podSpecTree()
	for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
		cs, _ := spec[list].([]any)
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok && m["image"] == from {
				m["image"] = to
			}
		}
	}
	for i := range w.Spec.InitContainers {
		if w.Spec.InitContainers[i].Image == from {
			w.Spec.InitContainers[i].Image = to
		}
	}
	for i := range w.Spec.Containers {
		if w.Spec.Containers[i].Image == from {
			w.Spec.Containers[i].Image = to
		}
	}
}

// setAnnotation sets an annotation on the pod template (or the Pod).
func (w *Workload) setAnnotation(key, value string) {
	path := w.specPath[:len(w.specPath)-1]
	cur := w.tree
	for _, k := range append(append([]string{}, path...), "metadata") {
		next, _ := cur[k].(map[string]any)
		if next == nil {
			next = map[string]any{}
			cur[k] = next
		}
		cur = next
	}
	ann, _ := cur["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
		cur["annotations"] = ann
	}
	ann[key] = value
}

// addClaimVolumes adds what the StatefulSet controller adds to each pod: a
// persistentVolumeClaim volume per claim template the pod spec does not
// already name (claim <template>-<pod>).
func addClaimVolumes(spec *corev1.PodSpec, claims []corev1.PersistentVolumeClaim) {
	for _, c := range claims {
		if slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.Name }) {
			continue
		}
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.Name},
		}})
	}
}
