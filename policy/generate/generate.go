package generate

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/cocoon-tee/cocoon/agent/initdata"
	_ "github.com/cocoon-tee/cocoon/protocols/agentpb" // registers grpc.AgentService
)

//go:embed rules.rego
var rules string

// Options control one generation.
type Options struct {
	Settings *Settings
	Images   ImageOptions
	// Namespace pins the pod's namespace when set.
	Namespace string
	// Profiles enables optional allowance sets.
	Profiles []string
	// NoDigestLock keeps the YAML's image references (the policy still
	// pins the digest each resolved to).
	NoDigestLock bool
	// AAToml and CDHToml go into initdata beside the policy when set.
	AAToml, CDHToml string
	// Algorithm is the initdata digest algorithm (default sha256).
	Algorithm string
	// Inject writes the initdata annotation into the output YAML.
	Inject bool
	// PinLayers pins every image layer's dm-verity root hash, so the host
	// may offer the layers as verified EROFS disks (docs/layers.md); the
	// settings' pin_layers does the same. Guest pull stays allowed.
	PinLayers bool
	// Mkfs is the mkfs.erofs to build layers with ("" = $PATH's or the
	// bundled one, erofs-utils >= 1.8.2).
	Mkfs string
}

// Result is what a generation produces.
type Result struct {
	Policy     string
	Initdata   *initdata.Initdata
	Annotation string
	// YAML is the input with images pinned to digests (and the annotation
	// when injected).
	YAML []byte
	// Images are the resolved images by the reference the YAML used.
	Images map[string]*ImageInfo
	// BlobRequests counts registry blob requests made.
	BlobRequests int
}

// Generate reads the YAML, resolves its images and returns the policy.
func Generate(ctx context.Context, yaml []byte, o Options) (*Result, error) {
	s := o.Settings
	if s == nil {
		var err error
		if s, err = DefaultSettings(); err != nil {
			return nil, err
		}
	}
	allow, err := s.Enabled(o.Profiles)
	if err != nil {
		return nil, err
	}
	in, err := ParseInput(yaml, s.PassThrough)
	if err != nil {
		return nil, err
	}
	ims, err := NewImages(o.Images)
	if err != nil {
		return nil, err
	}
	images := map[string]*ImageInfo{}
	for _, w := range in.Workloads {
		for _, ref := range workloadImages(w) {
			if images[ref] != nil {
				continue
			}
			info, err := ims.Resolve(ctx, ref)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", w.Kind, w.Name, err)
			}
			images[ref] = info
		}
	}
	if o.PinLayers || s.PinLayers {
		if err := pinLayers(ctx, o, images); err != nil {
			return nil, err
		}
	}
	// The policy pins digests; the rewritten YAML makes the cluster pull
	// exactly them, so kubelet and policy agree. The builder looks images
	// up by the reference written in the pod spec, pinned or not.
	pinned := map[string]*ImageInfo{}
	for ref, info := range images {
		pinned[ref], pinned[info.Pinned] = info, info
	}
	if !o.NoDigestLock {
		for _, w := range in.Workloads {
			for ref, info := range images {
				w.setImage(ref, info.Pinned)
			}
		}
	}
	data, err := newBuilder(s, in, pinned, allow, o.Namespace).build()
	if err != nil {
		return nil, err
	}
	text, err := Render(data)
	if err != nil {
		return nil, err
	}
	files := map[string]string{"policy.rego": text}
	if o.AAToml != "" {
		files["aa.toml"] = o.AAToml
	}
	if o.CDHToml != "" {
		files["cdh.toml"] = o.CDHToml
	}
	alg := o.Algorithm
	if alg == "" {
		alg = "sha256"
	}
	id, err := initdata.Create(alg, files)
	if err != nil {
		return nil, err
	}
	ann, err := initdata.Annotation(id.Raw)
	if err != nil {
		return nil, err
	}
	if o.Inject {
		for _, w := range in.Workloads {
			w.setAnnotation(initdata.AnnotationKey, ann)
		}
	}
	out, err := in.Output()
	if err != nil {
		return nil, err
	}
	return &Result{Policy: text, Initdata: id, Annotation: ann, YAML: out, Images: images, BlobRequests: ims.Requests}, nil
}

// workloadImages lists the images of a workload's containers in order.
func workloadImages(w *Workload) []string {
	var out []string
	for _, c := range w.Spec.InitContainers {
		out = append(out, c.Image)
	}
	for _, c := range w.Spec.Containers {
		out = append(out, c.Image)
	}
	return out
}

// Render is the rules followed by the pod's data: defaults for every
// request the rules do not decide themselves, the settings' always-allowed
// requests, and policy_data.
func Render(data *policyData) (string, error) {
	var b strings.Builder
	b.WriteString(rules)
	b.WriteString("\n# ---------------------------------------------------------------------------\n")
	b.WriteString("# Generated: requests allowed as they come, the rest denied.\n\n")
	allowed := map[string]bool{}
	for _, n := range data.requests {
		allowed[n] = true
	}
	for _, n := range requestNames() {
		switch {
		case ruleDecided[n]:
		case allowed[n]:
			fmt.Fprintf(&b, "%s := true\n\n", n)
		default:
			fmt.Fprintf(&b, "default %s := false\n\n", n)
		}
	}
	js, err := json.MarshalIndent(data, "", "\t")
	if err != nil {
		return "", err
	}
	b.WriteString("# Generated: the pod's containers and the runtime's fixed parts.\n")
	b.WriteString("policy_data := ")
	b.Write(bytes.TrimSpace(js))
	b.WriteString("\n")
	return b.String(), nil
}

// ruleDecided are the requests the rules decide themselves, listed in
// requests or not; the network ones only when listed (network_requests).
var ruleDecided = map[string]bool{
	"CreateContainerRequest": true, "ExecProcessRequest": true, "CopyFileRequest": true, "SetPolicyRequest": true,
	"CreateSandboxRequest": true, "UpdateInterfaceRequest": true, "UpdateRoutesRequest": true, "AddARPNeighborsRequest": true,
}

// requestNames lists the request message name of every AgentService rpc.
func requestNames() []string {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName("grpc.AgentService")
	if err != nil {
		return nil
	}
	ms := d.(protoreflect.ServiceDescriptor).Methods()
	seen := map[string]bool{}
	var out []string
	for i := 0; i < ms.Len(); i++ {
		n := string(ms.Get(i).Input().Name())
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
