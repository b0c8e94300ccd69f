package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

// Real images carry layers with absolute entry names: `umoci insert IMAGE
// DIR /` writes a "/" entry and "/etc/..." names (COMPAT.md §8, "Layer tars
// in the wild"). Such an image, pushed with skopeo to the real registry,
// and the same image with one more layer written by Go's archive/tar in
// shapes other unpackers accept, pull and mount with their content where
// the names say.
func TestPullRealLayerShapes(t *testing.T) {
	f := newFixture(t)
	src := f.build("bb")
	layout := strings.TrimPrefix(src, "oci:")
	insert := filepath.Join(f.dir, "insert")
	testregistry.Files(map[string]string{"etc/inserted": "from umoci insert", "opt/tool/run": "tool"})(t, insert)
	testregistry.Run(t, nil, "umoci", "insert", "--image", layout, insert, "/")
	ref := f.reg.Push(t, src, "shapes/inserted:1", nil)

	// The layer umoci wrote really names the root "/".
	im := fetchImage(t, f.reg.Addr, "shapes/inserted", "1")
	if names := layerNames(t, im.layers[len(im.layers)-1].blob); !names["/"] {
		t.Fatalf("umoci insert layer has no \"/\" entry: %v", names)
	}

	// One more layer, written by archive/tar: absolute and ./ names, an
	// entry before its parent directory, duplicates where the last wins,
	// hard links to absolute and relative names.
	odd := tarLayer(t, []tar.Header{
		{Name: "/srv/data/deep/file", Typeflag: tar.TypeReg, Size: int64(len("deep")), Mode: 0o644},
		{Name: "/srv/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 1000},
		{Name: "./etc/inserted", Typeflag: tar.TypeReg, Size: int64(len("last wins")), Mode: 0o600},
		{Name: "/opt/own/run", Typeflag: tar.TypeReg, Size: int64(len("own")), Mode: 0o755},
		{Name: "/usr/bin/tool", Typeflag: tar.TypeLink, Linkname: "/opt/own/run"},
		{Name: "./usr/bin/tool2", Typeflag: tar.TypeLink, Linkname: "usr/bin/tool"},
		{Name: "etc/dup", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		{Name: "/etc/dup", Typeflag: tar.TypeReg, Size: int64(len("file now")), Mode: 0o644},
	}, map[string]string{"/opt/own/run": "own", "/srv/data/deep/file": "deep", "./etc/inserted": "last wins", "/etc/dup": "file now"})
	im.layers = append(im.layers, regLayer{mediaType: ocispec.MediaTypeImageLayer, blob: odd})
	im.config.RootFS.DiffIDs = append(im.config.RootFS.DiffIDs, digest.FromBytes(odd))
	oddRef := pushImage(t, f.reg.Addr, "shapes/odd", "1", im)

	p := f.puller()
	run := filepath.Join(f.dir, "run")
	d := NewDriver(p, run, "")
	for i, r := range []string{ref, oddRef} {
		mp := filepath.Join(run, "c"+string(rune('0'+i)), "rootfs")
		m, err := d.Mount(context.Background(), storage.Request{Owner: "c", Storage: &storage.Storage{
			Driver: DriverName, Source: r, MountPoint: mp,
			DriverOptions: []string{`image_guest_pull={"metadata":{}}`},
		}})
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		want := map[string]string{"etc/inserted": "from umoci insert", "opt/tool/run": "tool", "bin/busybox": ""}
		if r == oddRef {
			want = map[string]string{"etc/inserted": "last wins", "opt/tool/run": "tool", "usr/bin/tool": "own", "usr/bin/tool2": "own", "srv/data/deep/file": "deep", "etc/dup": "file now"}
		}
		for name, body := range want {
			b, err := os.ReadFile(filepath.Join(mp, name))
			if err != nil || body != "" && string(b) != body {
				t.Errorf("%s: %s: %q %v, want %q", r, name, b, err, body)
			}
		}
		if r == oddRef {
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(mp, "srv"), &st); err != nil || st.Mode&0o777 != 0o700 || st.Uid != 1000 {
				t.Errorf("srv: mode %o uid %d %v, want the late directory entry's 700 and 1000", st.Mode&0o777, st.Uid, err)
			}
		}
		if err := m.Cleanup(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// layerNames lists the entry names of a gzip or plain tar layer.
func layerNames(t *testing.T, blob []byte) map[string]bool {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatalf("umoci layer is not gzip: %v", err)
	}
	names := map[string]bool{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names[h.Name] = true
	}
	return names
}

// tarLayer writes hdrs in order, with bodies for regular files.
func tarLayer(t *testing.T, hdrs []tar.Header, bodies map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(bodies[h.Name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
