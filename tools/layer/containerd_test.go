package layer

// This file checks the builder against containerd's own code rather than
// against our reading of it: containerd v2.3.0's EROFS snapshotter and
// differ, linked into the test as a library (test-only dependency), unpack
// two layers exactly as a Kata 4.1 node configured by Kata's guide does,
// and the files they leave must be the files Build writes.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/rootfs"
	"github.com/containerd/containerd/v2/plugins/content/local"
	erofsdiff "github.com/containerd/containerd/v2/plugins/diff/erofs"
	erofssnapshotter "github.com/containerd/containerd/v2/plugins/snapshots/erofs"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// kataMkfsOptions is the differ's mkfs_options in Kata 4.1.0's guide
// (docs/how-to/how-to-use-erofs-snapshotter-with-kata.md:110-112), written
// out here rather than taken from MkfsArgs so that the test does not check
// the builder against itself.
var kataMkfsOptions = []string{"-T0", "--mkfs-time", "--sort=none"}

// kataDefaultSize is the snapshotter's default_size: Kata's guide sets one
// ("6G or 10G", same file:118), which puts the snapshotter in block mode
// (containerd plugins/snapshots/erofs/plugin/plugin.go:91-97, erofs.go:186-187).
const kataDefaultSize = 6 << 30

// tarEntry is one member of a test layer.
type tarEntry struct {
	hdr  tar.Header
	body []byte
}

func file(name string, mode int64, body []byte) tarEntry {
	return tarEntry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body}
}

func dir(name string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

// baseLayer has the kinds of entries real images carry: directories, small
// and empty files, a file of several MiB (not a whole number of blocks,
// hashed by more than one level of the tree), a symlink, a hard link, a
// setuid file owned by a non-root user with an xattr, a name longer than
// tar's 100 bytes, and files the upper layer deletes.
func baseLayer() []tarEntry {
	large := make([]byte, 3<<20+1234)
	rand.NewChaCha8([32]byte{'c', 'o', 'c', 'o', 'o', 'n'}).Read(large)
	owned := file("usr/bin/su-tool", 0o4755, []byte("#!/bin/sh\necho owned\n"))
	owned.hdr.Uid, owned.hdr.Gid = 1000, 1000
	owned.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.note": "kept"}
	long := "usr/share/" + string(bytes.Repeat([]byte("d"), 120)) + "/file"
	return []tarEntry{
		dir("etc/"),
		file("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n")),
		file("etc/empty", 0o600, nil),
		dir("usr/"), dir("usr/bin/"),
		file("usr/bin/tool", 0o755, []byte("#!/bin/sh\necho tool\n")),
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/bin/alias", Linkname: "tool", Mode: 0o777}},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "usr/bin/tool-hard", Linkname: "usr/bin/tool"}},
		owned,
		dir("usr/share/"), dir("usr/share/" + string(bytes.Repeat([]byte("d"), 120)) + "/"),
		file(long, 0o644, []byte("long name\n")),
		dir("data/"),
		file("data/large.bin", 0o644, large),
		dir("opt/"),
		file("opt/gone.txt", 0o644, []byte("deleted above\n")),
		dir("opt/replaced/"),
		file("opt/replaced/a", 0o644, []byte("hidden above\n")),
	}
}

// upperLayer deletes a file (AUFS whiteout), makes a directory opaque and
// changes a file, as a Dockerfile's later steps do.
func upperLayer() []tarEntry {
	return []tarEntry{
		dir("opt/"),
		file("opt/.wh.gone.txt", 0o644, nil),
		dir("opt/replaced/"),
		file("opt/replaced/.wh..wh..opq", 0o644, nil),
		file("opt/replaced/b", 0o644, []byte("new\n")),
		dir("etc/"),
		file("etc/hosts", 0o644, []byte("127.0.0.1 localhost upper\n")),
	}
}

// testLayer is a layer blob as a registry serves it.
type testLayer struct {
	blob   []byte
	layer  rootfs.Layer // containerd's blob and diff descriptors
	diffID string
}

// makeLayer writes entries as a tar and compresses it with gzip or zstd.
func makeLayer(t *testing.T, entries []tarEntry, zstdCompressed bool) testLayer {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	mtime := time.Unix(1700000000, 0)
	for _, e := range entries {
		h := e.hdr
		h.ModTime = mtime
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var blob bytes.Buffer
	mediaType := ocispec.MediaTypeImageLayerGzip
	if zstdCompressed {
		mediaType = ocispec.MediaTypeImageLayerZstd
		zw, err := zstd.NewWriter(&blob)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(tarBuf.Bytes()); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	} else {
		zw := gzip.NewWriter(&blob)
		if _, err := zw.Write(tarBuf.Bytes()); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	diff := sha256.Sum256(tarBuf.Bytes())
	diffID := "sha256:" + hex.EncodeToString(diff[:])
	return testLayer{
		blob:   blob.Bytes(),
		diffID: diffID,
		layer: rootfs.Layer{
			Blob: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(blob.Bytes()), Size: int64(blob.Len())},
			Diff: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.Digest(diffID)},
		},
	}
}

// useMkfs makes containerd's differ run m: it runs "mkfs.erofs" from $PATH
// (containerd internal/erofsutils/mount.go:47).
func useMkfs(t *testing.T, m *Mkfs) {
	t.Helper()
	t.Setenv("PATH", filepath.Dir(m.Path)+string(os.PathListSeparator)+os.Getenv("PATH"))
	if p, err := exec.LookPath("mkfs.erofs"); err != nil || p != m.Path {
		t.Fatalf("mkfs.erofs on PATH is %q (%v), want %s", p, err, m.Path)
	}
	// A node's containerd has no SOURCE_DATE_EPOCH, and Build drops it.
	t.Setenv("SOURCE_DATE_EPOCH", "")
	os.Unsetenv("SOURCE_DATE_EPOCH")
}

// TestBuildMatchesContainerd unpacks a gzip and a zstd layer (whiteout,
// opaque directory, symlink, hard link, a 3 MiB file, xattr, setuid) with
// containerd v2.3.0's EROFS snapshotter and differ, configured as Kata
// 4.1.0's guide configures them, through pkg/rootfs.ApplyLayers (what
// client.Image.Unpack runs, client/image.go:347); takes each layer's file
// from the mounts the snapshotter hands the runtime; and checks that Build
// writes the same layer.erofs (EROFS image, dm-verity superblock and hash
// tree; only the superblock's UUID, random on the node, may differ) and
// the same layer.erofs.dmverity, byte for byte, so the root hash is equal.
func TestBuildMatchesContainerd(t *testing.T) {
	ctx := context.Background()
	m, err := LookupMkfs(ctx, BundledMkfs)
	if err != nil {
		t.Fatalf("%v (ci/install-deps.sh installs it)", err)
	}
	useMkfs(t, m)
	dir := t.TempDir()

	layers := []testLayer{makeLayer(t, baseLayer(), false), makeLayer(t, upperLayer(), true)}

	cs, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if err := content.WriteBlob(ctx, cs, l.layer.Blob.Digest.String(), bytes.NewReader(l.blob), l.layer.Blob); err != nil {
			t.Fatal(err)
		}
	}
	// Kata's guide, snapshotter: default_size (block mode), dmverity_mode
	// 'on' (:145-146). "on" only adds a check at start-up that the host has
	// dm_verity loaded (erofs.go:134-142), which this host lacks; "auto"
	// hands out the same mounts once the .dmverity file exists
	// (erofs.go:276-307), as checked below. Its enable_fsverity (:120) is
	// left out: it turns on fs-verity for the finished file after the image
	// is written (erofs.go:666-671), which does not change its bytes.
	sn, err := erofssnapshotter.NewSnapshotter(filepath.Join(dir, "erofs"),
		erofssnapshotter.WithDefaultSize(kataDefaultSize), erofssnapshotter.WithDmverityMode("auto"))
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	// Kata's guide, differ: mkfs_options (:110-112), enable_dmverity (:142-143);
	// the plugin turns them into these options (plugins/diff/erofs/plugin/plugin.go:78-99).
	differ := erofsdiff.NewErofsDiffer(cs, erofsdiff.WithMkfsOptions(kataMkfsOptions), erofsdiff.WithDmverity())

	var rl []rootfs.Layer
	for _, l := range layers {
		rl = append(rl, l.layer)
	}
	// ApplyLayers also fails unless the differ's diff ID is the tar's.
	chainID, err := rootfs.ApplyLayers(ctx, rl, sn, differ)
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := sn.View(ctx, "view-"+t.Name(), chainID.String())
	if err != nil {
		t.Fatal(err)
	}
	nodeFiles := erofsSources(t, mounts, len(layers))

	for i, l := range layers {
		blobPath := filepath.Join(dir, fmt.Sprintf("blob-%d", i))
		if err := os.WriteFile(blobPath, l.blob, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Build(ctx, m, blobPath, filepath.Join(dir, fmt.Sprintf("ours-%d.erofs", i)))
		if err != nil {
			t.Fatal(err)
		}
		if res.DiffID != l.diffID {
			t.Errorf("layer %d: diff ID %s, containerd's %s", i, res.DiffID, l.diffID)
		}
		compareLayerFile(t, i, nodeFiles[i], res)
		node, err := os.ReadFile(nodeFiles[i] + ".dmverity")
		if err != nil {
			t.Fatal(err)
		}
		ours, err := os.ReadFile(res.Metadata)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(node, ours) {
			t.Errorf("layer %d: containerd's %s is\n%s\nours is\n%s", i, filepath.Base(nodeFiles[i])+".dmverity", node, ours)
		}
		t.Logf("layer %d (%s): root hash %s, hash offset %d", i, l.layer.Blob.MediaType, res.Verity.RootHashHex(), res.Verity.HashOffset)
	}
}

// erofsSources returns the layer.erofs files of a view of n layers, lowest
// first. For a read-only view of several layers the snapshotter returns one
// "erofs" mount per layer, top first, then the overlay
// (plugins/snapshots/erofs/erofs.go:433-485); with dm-verity metadata
// present each carries X-containerd.dmverity=<file>.dmverity (:300-304).
func erofsSources(t *testing.T, mounts []mount.Mount, n int) []string {
	t.Helper()
	if len(mounts) != n+1 {
		t.Fatalf("snapshotter mounts %+v, want %d erofs layers and an overlay", mounts, n)
	}
	var out []string
	for i := n - 1; i >= 0; i-- {
		mt := mounts[i]
		if mt.Type != "erofs" || filepath.Base(mt.Source) != "layer.erofs" ||
			!slices.Contains(mt.Options, "X-containerd.dmverity="+mt.Source+".dmverity") {
			t.Fatalf("mount %d = %+v, want an erofs layer.erofs with its dm-verity metadata", i, mt)
		}
		out = append(out, mt.Source)
	}
	return out
}

// compareLayerFile checks containerd's layer.erofs against ours byte for
// byte, except the 16-byte UUID in the dm-verity superblock (cryptsetup's
// struct verity_sb: signature 8, version 4, hash_type 4, uuid 16), which
// the differ draws at random (plugins/diff/erofs/dmverity_linux.go:101-104)
// and which no root hash covers.
func compareLayerFile(t *testing.T, i int, nodePath string, res *Result) {
	t.Helper()
	node, err := os.ReadFile(nodePath)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := os.ReadFile(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	if len(node) != len(ours) {
		t.Fatalf("layer %d: containerd's layer.erofs is %d bytes, ours %d", i, len(node), len(ours))
	}
	off := int(res.Verity.HashOffset)
	uuidStart, uuidEnd := off+16, off+32
	if string(node[off:off+8]) != "verity\x00\x00" {
		t.Fatalf("layer %d: containerd's file has no dm-verity superblock at %d", i, off)
	}
	for at := range node {
		if node[at] != ours[at] && (at < uuidStart || at >= uuidEnd) {
			region := "EROFS image"
			switch {
			case at >= off+VerityBlockSize:
				region = "hash tree"
			case at >= off:
				region = "dm-verity superblock"
			}
			t.Fatalf("layer %d: first difference from containerd's layer.erofs at byte %d (%s, hash offset %d)", i, at, region, off)
		}
	}
}
