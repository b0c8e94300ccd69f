package generate

import (
	"context"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cocoon-tee/cocoon/policy"
)

// fakeImages stands in for resolved images in tests that do not need a
// registry: every reference resolves to a fixed digest and config.
func fakeImages(in *Input) map[string]*ImageInfo {
	out := map[string]*ImageInfo{}
	for _, w := range in.Workloads {
		for _, ref := range workloadImages(w) {
			out[ref] = &ImageInfo{
				Ref: ref, Pinned: "registry.example/" + ref + "@sha256:" + repeat64(ref),
				Config: ocispec.ImageConfig{Env: []string{"PATH=/bin:/usr/bin"}, Cmd: []string{"/bin/sh"}, WorkingDir: "/"},
				Passwd: "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
				Group:  "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
			}
		}
	}
	return out
}

func repeat64(s string) string {
	h := []byte("0123456789abcdef")
	b := make([]byte, 64)
	for i := range b {
		b[i] = h[(int(s[i%len(s)])+i)%16]
	}
	return string(b)
}

// buildFake renders the policy for yaml with fake images.
func buildFake(t testing.TB, yaml string, namespace string, profiles ...string) (*policyData, string) {
	t.Helper()
	s := defaults(t)
	in, err := ParseInput([]byte(yaml), s.PassThrough)
	if err != nil {
		t.Fatal(err)
	}
	allow, err := s.Enabled(profiles)
	if err != nil {
		t.Fatal(err)
	}
	data, err := newBuilder(s, in, fakeImages(in), allow, namespace).build()
	if err != nil {
		t.Fatal(err)
	}
	text, err := Render(data)
	if err != nil {
		t.Fatal(err)
	}
	return data, text
}

func TestRenderedPolicyLoads(t *testing.T) {
	_, text := buildFake(t, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n", "")
	p, err := policy.Load(context.Background(), text, "generated")
	if err != nil {
		t.Fatalf("generated policy does not load: %v\n%s", err, text)
	}
	d, err := p.Evaluate(context.Background(), "SetPolicyRequest", map[string]any{"policy": "x"})
	if err != nil || d.Allowed {
		t.Fatalf("SetPolicy: %+v %v", d, err)
	}
}
