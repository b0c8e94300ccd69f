package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

var rootHashLine = regexp.MustCompile(`^[0-9a-f]{64}\n$`)

// TestLayerBuild drives `cocoonctl layer build` on a busybox image: from a
// registry (zstd layers, pulled through containers/image), from its OCI
// layout, and from the layer file itself; the three agree on the root hash
// of the same blob, which matches the .dmverity metadata written beside it.
func TestLayerBuild(t *testing.T) {
	testenv.RequiresRoot(t)
	ref := testregistry.Build(t, t.TempDir(), []string{"/bin/sh"}, func(t testing.TB, rootfs string) {
		testenv.BusyboxRootfs(t, rootfs)
	})
	reg := testregistry.Start(t)
	pushed := reg.Push(t, ref, "layers/busybox:1", nil, "--dest-compress-format", "zstd")

	byDigest := map[string]string{}
	for _, src := range []string{ref, "docker://" + pushed} {
		dir := t.TempDir()
		out, errOut, code := runCtl(t, "layer", "build", "--insecure", "--image", src, "-o", dir, "--format", "json")
		if code != 0 {
			t.Fatalf("%s: code %d: %s", src, code, errOut)
		}
		var layers []struct {
			BlobDigest string   `json:"blob_digest"`
			RootHash   string   `json:"roothash"`
			Options    []string `json:"storage_options"`
		}
		if err := json.Unmarshal([]byte(out), &layers); err != nil || len(layers) != 1 {
			t.Fatalf("%s: %v: %s", src, err, out)
		}
		l := layers[0]
		if !strings.Contains(strings.Join(l.Options, " "), "X-kata.dmverity.roothash="+l.RootHash) {
			t.Fatalf("options %q lack the root hash", l.Options)
		}
		byDigest[l.BlobDigest] = l.RootHash
		blob := filepath.Join(dir, strings.TrimPrefix(l.BlobDigest, "sha256:")+".erofs")
		meta, err := os.ReadFile(blob + ".dmverity")
		if err != nil || !strings.Contains(string(meta), l.RootHash) {
			t.Fatalf("%s.dmverity: %s %v", blob, meta, err)
		}
	}
	// gzip (layout) and zstd (registry) blobs differ, so do their images.
	if len(byDigest) != 2 {
		t.Fatalf("want two distinct blobs, got %v", byDigest)
	}

	layout := strings.TrimSuffix(strings.TrimPrefix(ref, "oci:"), ":latest")
	files := 0
	for digest, want := range byDigest {
		blob := filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
		if _, err := os.Stat(blob); err != nil {
			continue // the zstd blob exists only in the registry
		}
		out, errOut, code := runCtl(t, "layer", "build", blob, "-o", filepath.Join(t.TempDir(), "layer.erofs"))
		if code != 0 || !rootHashLine.MatchString(out) || strings.TrimSpace(out) != want {
			t.Fatalf("layer file: code %d, stdout %q (want %s), stderr %q", code, out, want, errOut)
		}
		if !strings.Contains(errOut, "erofs-utils") {
			t.Fatalf("stderr does not name the erofs-utils version: %q", errOut)
		}
		files++
	}
	if files != 1 {
		t.Fatalf("built %d layer files from the layout, want 1", files)
	}
}

func TestLayerBuildUsage(t *testing.T) {
	for _, args := range [][]string{
		{"layer", "build", "x.tar"},
		{"layer", "build", "-o", "out"},
		{"layer", "build", "x.tar", "--image", "oci:/nonexistent", "-o", "out"},
		{"layer", "build", "x.tar", "-o", "out", "--format", "yaml"},
		{"layer", "build", filepath.Join(t.TempDir(), "missing.tar"), "-o", filepath.Join(t.TempDir(), "o")},
		{"layer", "build", "x.tar", "-o", "out", "--mkfs-erofs", "/nonexistent/mkfs.erofs"},
	} {
		if _, errOut, code := runCtl(t, args...); code == 0 || errOut == "" {
			t.Errorf("cocoonctl %v: code %d, stderr %q", args, code, errOut)
		}
	}
}
