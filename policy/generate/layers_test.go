package generate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/layer"
)

// onLayers turns a guest-pull request into the one runtime-rs sends for
// host-shared layers (docs/layers.md): one blk storage per layer on the
// merged disk, partition 1 the top layer, all on the container's rootfs
// under the shared directory, which is also Root.Path. hashes are top
// first.
func onLayers(r *agentpb.CreateContainerRequest, hashes []string) {
	root := "/run/kata-containers/shared/containers/" + r.ContainerId + "/rootfs"
	r.Storages = r.Storages[1:] // the image_guest_pull storage
	var layers []*agentpb.Storage
	for i, h := range hashes {
		layers = append(layers, &agentpb.Storage{
			Driver: "blk", Source: "02", Fstype: "erofs", MountPoint: root,
			Options: []string{erofs.OptOverlayLower, erofs.OptMultiLayer, erofs.OptGPTPartitioned,
				fmt.Sprintf("%s%d", erofs.OptPartition, i+1), erofs.OptVerityEnabled,
				"X-kata.dmverity.roothash=" + h, "X-kata.dmverity.hashoffset=8192",
				"X-kata.dmverity.no-superblock=false", "X-kata.dmverity.salt=" + strings.Repeat("0", 64)},
		})
	}
	r.Storages = append(layers, r.Storages...)
	r.OCI.Root.Path = root
}

// TestPinLayers generates with layers pinned against images in the local
// registry: each container's entry carries its image's layer root hashes
// top first, as tools/layer builds them; the request on exactly those
// layers is allowed, guest pull still is, and a wrong hash, layers out of
// order, a missing layer, layers beside guest pull, and layers under a
// policy generated without pins are denied, the wrong hash named with the
// pinned ones in erofs.RootHashDenied's words.
func TestPinLayers(t *testing.T) {
	ti := buildImages(t)
	yaml := corpus(t, ti.reg.Addr)["02-pod-multi"]
	ctx := context.Background()
	res, err := Generate(ctx, yaml, Options{PinLayers: true, Images: ImageOptions{RegistriesConf: ti.conf}})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ParseInput(res.YAML, defaults(t).PassThrough)
	if err != nil {
		t.Fatal(err)
	}
	// The hashes, built here directly and put top first.
	m := testMkfsOrFail(t)
	for ref, info := range res.Images {
		built, err := layer.BuildImage(ctx, m, "docker://"+info.Pinned, t.TempDir(), layer.ImageOptions{RegistriesConf: ti.conf})
		if err != nil {
			t.Fatal(err)
		}
		if len(built) < 2 || len(info.RootHashes) != len(built) {
			t.Fatalf("%s: %d root hashes pinned, %d layers built (the test images have at least 2)", ref, len(info.RootHashes), len(built))
		}
		for i, b := range built {
			if got := info.RootHashes[len(built)-1-i]; got != b.Verity.RootHashHex() {
				t.Fatalf("%s: layer %d (lowest first) pinned as %s, built as %s", ref, i, got, b.Verity.RootHashHex())
			}
		}
	}
	p, err := policy.Load(ctx, res.Policy, "generated")
	if err != nil {
		t.Fatal(err)
	}
	q := prepareCreate(t, res.Policy)
	rt := &miniRuntime{t: t, in: in, images: res.Images, runDir: "/run/kata-containers"}
	w := in.Workloads[0]
	pod := rt.podName(w)
	decide := func(r *agentpb.CreateContainerRequest) policy.Decision {
		t.Helper()
		d, err := p.Explain(ctx, "CreateContainerRequest", input.Encode(r))
		if err != nil {
			t.Fatal(err)
		}
		decideCreate(t, q, r) // the yes/no tests and the descriptions agree
		return d
	}
	hashesOf := func(image string) []string {
		for _, info := range res.Images {
			if info.Pinned == image {
				return info.RootHashes
			}
		}
		t.Fatalf("no image %s", image)
		return nil
	}
	ct := w.Spec.Containers[0]
	hashes := hashesOf(ct.Image)
	if d := decide(rt.request(w, pod, ct)); !d.Allowed {
		t.Fatalf("guest pull denied: %s", d.Prints)
	}
	r := rt.request(w, pod, ct)
	onLayers(r, hashes)
	if d := decide(r); !d.Allowed {
		t.Fatalf("the image's own layers denied: %s", d.Prints)
	}
	wrong := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name   string
		hashes []string
		mutate func(*agentpb.CreateContainerRequest)
		want   []string
	}{
		{"wrong hash", append([]string{wrong}, hashes[1:]...), nil,
			[]string{"storages[0]: erofs layer container " + r.ContainerId + " storage 0 (02 partition 1): dm-verity root hash " + wrong + " is not allowed by policy (policy pins " + strings.Join(hashes, ", ") + ")", "cocoonctl layer build"}},
		{"out of order", []string{hashes[1], hashes[0]}, nil, []string{"by partition"}},
		{"layer dropped", hashes[1:], nil, []string{"by partition"}},
		{"beside guest pull", hashes, func(r *agentpb.CreateContainerRequest) {
			r.Storages = append(r.Storages, rt.request(w, pod, ct).Storages[0])
		}, []string{"image_guest_pull"}},
		{"another mount point", hashes, func(r *agentpb.CreateContainerRequest) {
			r.Storages[1].MountPoint = "/run/kata-containers/sandbox/storage/x"
		}, []string{"storages[1].mount_point"}},
		{"another container's layers", hashesOf(w.Spec.Containers[1].Image), nil, []string{"storages[0]: erofs layer", "is not allowed by policy"}},
	} {
		r := rt.request(w, pod, ct)
		onLayers(r, c.hashes)
		if c.mutate != nil {
			c.mutate(r)
		}
		d := decide(r)
		if d.Allowed {
			t.Errorf("%s: allowed", c.name)
			continue
		}
		for _, want := range c.want {
			if !strings.Contains(d.Prints, want) {
				t.Errorf("%s: denial %q does not say %q", c.name, d.Prints, want)
			}
		}
	}

	// Without pins the same layers are refused; guest pull is the way.
	plain, err := Generate(ctx, yaml, Options{Images: ImageOptions{RegistriesConf: ti.conf}})
	if err != nil {
		t.Fatal(err)
	}
	pp, err := policy.Load(ctx, plain.Policy, "generated")
	if err != nil {
		t.Fatal(err)
	}
	d, err := pp.Explain(ctx, "CreateContainerRequest", input.Encode(r))
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || !strings.Contains(d.Prints, "pins no layer root hashes") {
		t.Errorf("layers under a policy without pins: allowed %v, %q", d.Allowed, d.Prints)
	}

	// The settings field does what the option does.
	s := defaults(t)
	s.PinLayers = true
	viaSettings, err := Generate(ctx, yaml, Options{Settings: s, Images: ImageOptions{RegistriesConf: ti.conf}})
	if err != nil {
		t.Fatal(err)
	}
	if viaSettings.Policy != res.Policy {
		t.Error("settings pin_layers wrote another policy than PinLayers")
	}
}

func testMkfsOrFail(t testing.TB) *layer.Mkfs {
	t.Helper()
	m, err := layer.LookupMkfs(context.Background(), "")
	if err != nil {
		t.Fatalf("%v (ci/install-deps.sh installs one)", err)
	}
	return m
}

// TestPinLayersCached: with a cache, a second generation with layers
// pinned downloads no layer (the root hashes are cached by blob digest,
// mkfs.erofs version and build options) and pins the same hashes; a
// damaged entry is rebuilt, never believed.
func TestPinLayersCached(t *testing.T) {
	_, px, conf, yaml := proxied(t)
	cache := t.TempDir()
	o := Options{PinLayers: true, Images: ImageOptions{RegistriesConf: conf, CacheDir: cache}}
	first, err := Generate(context.Background(), yaml, o)
	if err != nil {
		t.Fatal(err)
	}
	before := px.BlobGets()
	second, err := Generate(context.Background(), yaml, o)
	if err != nil {
		t.Fatal(err)
	}
	if n := px.BlobGets() - before; n != 0 {
		t.Errorf("second run with pinned layers made %d blob requests", n)
	}
	if first.Policy != second.Policy {
		t.Error("second run pinned other layers")
	}
	// Damage every cached root hash: the next run builds again and pins
	// the right ones.
	entries, err := filepath.Glob(filepath.Join(cache, "layers", "*"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("no cached layer hashes in %s: %v", cache, err)
	}
	for _, e := range entries {
		if err := os.WriteFile(e, []byte("not a root hash"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before = px.BlobGets()
	third, err := Generate(context.Background(), yaml, o)
	if err != nil {
		t.Fatal(err)
	}
	if px.BlobGets() == before {
		t.Error("damaged cache entries were believed: no layer was downloaded")
	}
	if third.Policy != first.Policy {
		t.Error("after damaged cache entries another policy was written")
	}
}

// TestLayerHashKey: the cache key changes with each input of the root
// hash: the blob, the mkfs.erofs version, its options and the salt.
func TestLayerHashKey(t *testing.T) {
	base := layerHashKey("sha256:"+strings.Repeat("a", 64), "1.8.6", []string{"--tar=f"}, []byte{1})
	for name, k := range map[string]digest.Digest{
		"blob":    layerHashKey("sha256:"+strings.Repeat("b", 64), "1.8.6", []string{"--tar=f"}, []byte{1}),
		"version": layerHashKey("sha256:"+strings.Repeat("a", 64), "1.8.7", []string{"--tar=f"}, []byte{1}),
		"options": layerHashKey("sha256:"+strings.Repeat("a", 64), "1.8.6", []string{"--tar=f", "-T0"}, []byte{1}),
		"salt":    layerHashKey("sha256:"+strings.Repeat("a", 64), "1.8.6", []string{"--tar=f"}, []byte{2}),
	} {
		if k == base {
			t.Errorf("another %s gives the same key", name)
		}
	}
}
