package layer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

func testMkfs(t testing.TB) *Mkfs {
	t.Helper()
	m, err := LookupMkfs(context.Background(), "")
	if err != nil {
		t.Fatalf("%v (ci/install-deps.sh installs one)", err)
	}
	return m
}

// busyboxImage is a two-layer image: busybox, then a layer that deletes a
// file and a directory, which umoci writes as AUFS whiteouts.
func busyboxImage(t *testing.T) string {
	dir := t.TempDir()
	return testregistry.Build(t, dir, []string{"/bin/sh"},
		func(t testing.TB, rootfs string) {
			testenv.BusyboxRootfs(t, rootfs)
			testregistry.Files(map[string]string{"tmp/gone": "x", "etc/old/a": "a", "etc/keep": "k"})(t, rootfs)
		},
		testregistry.Remove("tmp/gone", "etc/old"),
	)
}

// TestBuildBusyboxImage builds every layer of a busybox image from its OCI
// layout, checks the hash tree with veritysetup (userspace, no
// device-mapper), mounts each EROFS image and finds busybox in the first
// and overlay whiteouts (0:0 character devices) in the second.
func TestBuildBusyboxImage(t *testing.T) {
	testenv.RequiresRoot(t)
	requireTool(t, "veritysetup")
	m := testMkfs(t)
	ref := busyboxImage(t)
	out := t.TempDir()
	res, err := BuildImage(context.Background(), m, ref, out, ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("%d layers built, want 2", len(res))
	}
	for _, r := range res {
		run(t, "veritysetup", "verify", fmt.Sprintf("--hash-offset=%d", r.Verity.HashOffset),
			r.Image, r.Image, r.Verity.RootHashHex())
		var meta struct {
			RootHash   string `json:"roothash"`
			HashOffset uint64 `json:"hashoffset"`
		}
		b, err := os.ReadFile(r.Metadata)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &meta); err != nil || meta.RootHash != r.Verity.RootHashHex() || meta.HashOffset != r.Verity.HashOffset {
			t.Fatalf("metadata %s = %s (%v)", r.Metadata, b, err)
		}
		// What runtime-rs would send for it parses back to the same tree.
		lo, err := erofs.ParseOptions(r.Options(1))
		if err != nil || lo.Verity.RootHash != r.Verity.RootHashHex() || lo.Verity.DataBlocks != r.Verity.DataBlocks {
			t.Fatalf("options %q: %+v %v", r.Options(1), lo, err)
		}
	}
	base := mountErofs(t, res[0].Image)
	want, err := os.ReadFile(testenv.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(base, "bin/busybox")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("bin/busybox in layer 1: %d bytes, %v", len(got), err)
	}
	top := mountErofs(t, res[1].Image)
	for _, p := range []string{"tmp/gone", "etc/old"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(top, p), &st); err != nil {
			t.Fatalf("whiteout %s: %v", p, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Fatalf("%s: mode %o rdev %d, want an overlay whiteout (char 0:0)", p, st.Mode, st.Rdev)
		}
	}
	if _, err := os.Lstat(filepath.Join(top, "tmp/.wh.gone")); !os.IsNotExist(err) {
		t.Fatalf("AUFS whiteout file left in the image: %v", err)
	}
}

// TestBuildReproducible: the same blob built in two different directories
// gives byte-identical images, metadata and root hashes; the image's EROFS
// part equals what containerd's differ command line writes (with or without
// the -b4096 newer containerd adds), and the UUID follows the blob digest.
func TestBuildReproducible(t *testing.T) {
	testenv.RequiresRoot(t)
	m := testMkfs(t)
	ref := busyboxImage(t)
	layout := strings.TrimSuffix(strings.TrimPrefix(ref, "oci:"), ":latest")
	blob := largestBlob(t, filepath.Join(layout, "blobs", "sha256"))

	var results []*Result
	for i := 0; i < 2; i++ {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("build-%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		r, err := Build(context.Background(), m, blob, filepath.Join(dir, "layer.erofs"))
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	a, b := results[0], results[1]
	if a.Verity.RootHashHex() != b.Verity.RootHashHex() {
		t.Fatalf("root hashes differ: %s %s", a.Verity.RootHashHex(), b.Verity.RootHashHex())
	}
	for _, f := range []func(*Result) string{func(r *Result) string { return r.Image }, func(r *Result) string { return r.Metadata }} {
		x, _ := os.ReadFile(f(a))
		y, _ := os.ReadFile(f(b))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Fatalf("%s and %s differ", f(a), f(b))
		}
	}
	if a.UUID != BlobUUID("sha256:"+filepath.Base(blob)).String() {
		t.Fatalf("UUID %s not derived from the blob digest", a.UUID)
	}

	ours, err := os.ReadFile(a.Image)
	if err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"-b4096"}} {
		plain := filepath.Join(t.TempDir(), "layer.erofs")
		args := append([]string{"--tar=f", "--aufs", "--quiet", "-Enoinline_data"}, extra...)
		args = append(args, "-T0", "--mkfs-time", "--sort=none", "-U", a.UUID, plain)
		cmd := exec.Command(m.Path, args...)
		tarFile := gunzipTo(t, blob)
		in, err := os.Open(tarFile)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = in
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mkfs.erofs %v: %v\n%s", args, err, out)
		}
		in.Close()
		theirs, err := os.ReadFile(plain)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(theirs)) != a.Verity.HashOffset || !bytes.Equal(theirs, ours[:len(theirs)]) {
			t.Fatalf("extra %q: EROFS part differs from the differ's command line (%d vs %d bytes)", extra, len(theirs), a.Verity.HashOffset)
		}
	}
}

func TestMkfsVersionCompare(t *testing.T) {
	for v, want := range map[string]bool{"1.5": false, "1.7.1": false, "1.8.1": false, "1.8.2": true,
		"1.8.6": true, "1.8.10": true, "1.9": true, "2.0": true, "1.8.6-dirty": true, "x": false} {
		if got := atLeast(v, MinMkfsVersion); got != want {
			t.Errorf("atLeast(%q) = %v", v, got)
		}
	}
	m := testMkfs(t)
	if !atLeast(m.Version, MinMkfsVersion) {
		t.Fatalf("LookupMkfs returned erofs-utils %s", m.Version)
	}
	if _, err := LookupMkfs(context.Background(), filepath.Join(t.TempDir(), "missing")); err == nil ||
		!strings.Contains(err.Error(), "1.8.2") {
		t.Fatalf("missing mkfs.erofs: %v", err)
	}
}

func mountErofs(t *testing.T, img string) string {
	t.Helper()
	dev := strings.TrimSpace(run(t, "losetup", "--find", "--show", "--read-only", img))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	dir := t.TempDir()
	if err := unix.Mount(dev, dir, "erofs", unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("mount %s (%s): %v", img, dev, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// largestBlob is the biggest file in an OCI layout's blob directory: the
// busybox layer.
func largestBlob(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var best string
	var size int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Size() > size {
			best, size = filepath.Join(dir, e.Name()), fi.Size()
		}
	}
	return best
}

func gunzipTo(t *testing.T, blob string) string {
	t.Helper()
	f, err := os.Open(blob)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := decompress(f)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "layer.tar")
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return out
}
