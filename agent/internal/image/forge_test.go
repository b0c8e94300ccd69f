package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// regImage is an image as a registry serves it: its config and its layer
// blobs with their descriptors. Tests fetch one, change it (encrypt a
// layer, swap a blob, keep a config) and push the result, to build
// manifests skopeo would never write.
type regImage struct {
	config ocispec.Image
	layers []regLayer
}

type regLayer struct {
	mediaType   string
	annotations map[string]string
	blob        []byte
}

// fetchImage reads repo:tag (an OCI manifest) and all its blobs.
func fetchImage(t *testing.T, addr, repo, tag string) regImage {
	t.Helper()
	var m ocispec.Manifest
	raw := httpGet(t, fmt.Sprintf("http://%s/v2/%s/manifests/%s", addr, repo, tag), ocispec.MediaTypeImageManifest)
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var im regImage
	if err := json.Unmarshal(httpGet(t, fmt.Sprintf("http://%s/v2/%s/blobs/%s", addr, repo, m.Config.Digest), ""), &im.config); err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		im.layers = append(im.layers, regLayer{
			mediaType:   l.MediaType,
			annotations: l.Annotations,
			blob:        httpGet(t, fmt.Sprintf("http://%s/v2/%s/blobs/%s", addr, repo, l.Digest), ""),
		})
	}
	return im
}

// pushImage uploads im's blobs and an OCI manifest naming them as
// repo:tag and returns the reference.
func pushImage(t *testing.T, addr, repo, tag string, im regImage) string {
	t.Helper()
	cfg, err := json.Marshal(im.config)
	if err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: uploadBlob(t, addr, repo, ocispec.MediaTypeImageConfig, cfg)}
	m.SchemaVersion = 2
	for _, l := range im.layers {
		d := uploadBlob(t, addr, repo, l.mediaType, l.blob)
		d.Annotations = l.annotations
		m.Layers = append(m.Layers, d)
	}
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	httpDo(t, http.MethodPut, fmt.Sprintf("http://%s/v2/%s/manifests/%s", addr, repo, tag), ocispec.MediaTypeImageManifest, body, http.StatusCreated)
	return addr + "/" + repo + ":" + tag
}

// uploadBlob stores one blob with the registry's two-step upload.
func uploadBlob(t *testing.T, addr, repo, mediaType string, blob []byte) ocispec.Descriptor {
	t.Helper()
	d := digest.FromBytes(blob)
	resp := httpDo(t, http.MethodPost, fmt.Sprintf("http://%s/v2/%s/blobs/uploads/", addr, repo), "", nil, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	if strings.HasPrefix(loc, "/") {
		loc = "http://" + addr + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	httpDo(t, http.MethodPut, loc+sep+"digest="+d.String(), "application/octet-stream", blob, http.StatusCreated)
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(blob))}
}

func httpGet(t *testing.T, url, accept string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return b
}

func httpDo(t *testing.T, method, url, contentType string, body []byte, want int) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d (want %d): %s", method, url, resp.StatusCode, want, msg)
	}
	return resp
}

// countingKeys stands in for the KBS and counts how often it is asked.
type countingKeys struct {
	mu    sync.Mutex
	keys  map[string][]byte
	calls int
}

func (c *countingKeys) ResolveKey(_ context.Context, kid string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	k, ok := c.keys[kid]
	if !ok {
		return nil, fmt.Errorf("key %s: %w", kid, errdefs.ErrNotFound)
	}
	return k, nil
}

func (c *countingKeys) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}
