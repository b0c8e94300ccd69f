package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

func TestSharedLayersDownloadOnce(t *testing.T) {
	f := newFixture(t)
	px := testregistry.NewProxy(t, f.reg)
	f.hosts = append(f.hosts, px.Addr)
	base := f.build("base")
	f.reg.Push(t, testregistry.Extend(t, base, filepath.Join(f.dir, "a"), testregistry.Files(map[string]string{"app": "a"})), "app:a", nil)
	// Same base layer, different top layer.
	other := testregistry.Extend(t, base, filepath.Join(f.dir, "b"), testregistry.Files(map[string]string{"app": "b"}))
	f.reg.Push(t, other, "app:b", nil)
	p := f.puller()

	a, err := p.Pull(context.Background(), px.Addr+"/app:a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	first := px.BlobGets()
	if first != 3 || a.Fetched != 2 {
		t.Fatalf("first pull: %d blob downloads, %d layers fetched; want 3 (config + 2 layers), 2", first, a.Fetched)
	}
	b, err := p.Pull(context.Background(), px.Addr+"/app:b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if got := px.BlobGets() - first; got != 2 || b.Fetched != 1 {
		t.Fatalf("second pull: %d blob downloads, %d fetched; want 2 (config + top layer), 1", got, b.Fetched)
	}
	if a.Layers[0] != b.Layers[0] || f.store.Refs(a.held[0]) != 2 {
		t.Errorf("base layer not shared: %s vs %s", a.Layers[0], b.Layers[0])
	}
}

func TestConnectionCutIsRetried(t *testing.T) {
	f := newFixture(t)
	px := testregistry.NewProxy(t, f.reg)
	f.hosts = append(f.hosts, px.Addr)
	f.reg.Push(t, f.build("bb"), "cut:1", nil)
	px.CutFirst(1, 4096)
	p := f.puller()
	im, err := p.Pull(context.Background(), px.Addr+"/cut:1")
	if err != nil {
		t.Fatalf("pull after a cut connection: %v", err)
	}
	defer im.Release()
	if px.BlobGets() < 3 {
		t.Errorf("only %d blob downloads: the cut one was not retried", px.BlobGets())
	}
	if _, tmp := f.storedLayers(); len(tmp) != 0 {
		t.Errorf("temp left: %v", tmp)
	}

	// A registry that keeps cutting gives a clear error and stores nothing.
	f.reg.Push(t, f.build("other", testregistry.Files(map[string]string{"x": "y"})), "cut:2", nil)
	px.CutFirst(100, 512)
	_, err = p.Pull(context.Background(), px.Addr+"/cut:2")
	if err == nil {
		t.Fatal("pull succeeded through a broken connection")
	}
	layers, tmp := f.storedLayers()
	if len(layers) != 1 || len(tmp) != 0 {
		t.Errorf("failed pull stored %v, temp %v", layers, tmp)
	}
}

func TestCorruptBlobRejected(t *testing.T) {
	f := newFixture(t)
	px := testregistry.NewProxy(t, f.reg)
	f.hosts = append(f.hosts, px.Addr)
	f.reg.Push(t, f.build("bb"), "flip:1", nil)
	px.FlipBytes(true)
	_, err := f.puller().Pull(context.Background(), px.Addr+"/flip:1")
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("corrupted blob: got %v, want a digest error", err)
	}
	if layers, tmp := f.storedLayers(); len(layers)+len(tmp) != 0 {
		t.Errorf("corrupt pull stored %v %v", layers, tmp)
	}
}

// TestManifestList pushes two single-platform images and an OCI index
// naming them; the puller must take the host platform's entry.
func TestManifestList(t *testing.T) {
	f := newFixture(t)
	f.reg.Push(t, f.build("amd", testregistry.Files(map[string]string{"arch": "amd64"})), "multi:amd64", nil)
	f.reg.Push(t, f.build("arm", testregistry.Files(map[string]string{"arch": "arm64"})), "multi:arm64", nil)
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	index.SchemaVersion = 2
	for _, arch := range []string{"arm64", "amd64"} {
		d := headManifest(t, f.reg.Addr, "multi", arch)
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		index.Manifests = append(index.Manifests, d)
	}
	body, _ := json.Marshal(index)
	req, _ := http.NewRequest(http.MethodPut, "http://"+f.reg.Addr+"/v2/multi/manifests/list", bytes.NewReader(body))
	req.Header.Set("Content-Type", ocispec.MediaTypeImageIndex)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push index: %v %v", resp, err)
	}
	resp.Body.Close()

	p := f.puller(func(o *Options) { o.OS, o.Arch = "linux", "amd64" })
	im, err := p.Pull(context.Background(), f.reg.Addr+"/multi:list")
	if err != nil {
		t.Fatal(err)
	}
	defer im.Release()
	if im.ManifestDigest != digest.FromBytes(body) {
		t.Errorf("event digest %s is not the index's", im.ManifestDigest)
	}
	top := im.Layers[len(im.Layers)-1]
	if b, _ := os.ReadFile(filepath.Join(top, "arch")); string(b) != "amd64" {
		t.Errorf("picked the %q image", b)
	}
}

func headManifest(t *testing.T, addr, repo, tag string) ocispec.Descriptor {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/v2/%s/manifests/%s", addr, repo, tag), nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return ocispec.Descriptor{MediaType: resp.Header.Get("Content-Type"), Digest: digest.FromBytes(b), Size: int64(len(b))}
}
