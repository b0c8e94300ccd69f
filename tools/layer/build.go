package layer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
	"github.com/klauspost/compress/zstd"
)

// MkfsArgs are the mkfs.erofs flags of containerd's EROFS differ in tar
// conversion mode (internal/erofsutils ConvertTarErofs: --tar=f --aufs
// --quiet -Enoinline_data), followed by the mkfs_options Kata 4.1's guide
// and kata-deploy configure (-T0 --mkfs-time --sort=none), then -U with the
// UUID derived from the layer's blob digest and the output path.
var MkfsArgs = []string{"--tar=f", "--aufs", "--quiet", "-Enoinline_data", "-T0", "--mkfs-time", "--sort=none"}

// Result describes one built layer image.
type Result struct {
	Image      string // the EROFS image with the hash tree appended (layer.erofs)
	Metadata   string // Image + ".dmverity": containerd's {"roothash","hashoffset"}
	BlobDigest string // sha256:... of the blob as given (compressed)
	DiffID     string // sha256:... of the uncompressed tar
	UUID       string // the EROFS UUID, from BlobDigest as containerd derives it
	Mkfs       Mkfs
	Verity     *Verity
}

// Options are the runtime-rs storage options for this layer at GPT
// partition n: what the agent receives (docs/layers.md).
func (r *Result) Options(partition int) []string {
	return []string{
		erofs.OptOverlayLower, erofs.OptMultiLayer, erofs.OptGPTPartitioned,
		fmt.Sprintf("%s%d", erofs.OptPartition, partition),
		erofs.OptVerityEnabled,
		"X-kata.dmverity.roothash=" + r.Verity.RootHashHex(),
		fmt.Sprintf("X-kata.dmverity.hashoffset=%d", r.Verity.HashOffset),
		"X-kata.dmverity.no-superblock=false",
		"X-kata.dmverity.salt=" + hex.EncodeToString(r.Verity.Salt),
	}
}

// Partition is the GPT partition number of layer i (lowest first, as
// BuildImage returns them) in an image of n layers. runtime-rs puts the
// layers on the disk in the order of containerd's overlay mounts, top
// first, and Kata's agent stacks them by partition number with partition 1
// on top (multi_layer_erofs.rs; agent/storage/erofs_group.go does the
// same): the top layer is partition 1, the lowest partition n.
func Partition(i, n int) int { return n - i }

// StorageOptions are the runtime-rs storage options of every layer of an
// image, res lowest first as BuildImage returns them, each with its
// partition number (Partition).
func StorageOptions(res []*Result) [][]string {
	out := make([][]string, len(res))
	for i, r := range res {
		out[i] = r.Options(Partition(i, len(res)))
	}
	return out
}

// BlobUUID is the EROFS UUID containerd's differ gives the layer whose
// (compressed) blob has this digest: a name-based SHA-1 UUID in the URL
// namespace of "erofs:blobs/<digest>".
func BlobUUID(blobDigest string) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("erofs:blobs/"+blobDigest))
}

// Build turns the layer blob at blobPath (tar, tar+gzip or tar+zstd) into
// out (EROFS + dm-verity superblock + hash tree) and out.dmverity, the
// files containerd's differ leaves as layer.erofs and layer.erofs.dmverity.
// The root hash depends only on the blob and the mkfs.erofs version.
func Build(ctx context.Context, m *Mkfs, blobPath, out string) (*Result, error) {
	blobDigest, err := fileDigest(blobPath)
	if err != nil {
		return nil, err
	}
	res := &Result{Image: out, Metadata: out + ".dmverity", BlobDigest: blobDigest, Mkfs: *m}
	u := BlobUUID(blobDigest)
	res.UUID = u.String()

	f, err := os.Open(blobPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tarStream, err := decompress(f)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", blobPath, err)
	}
	defer tarStream.Close()
	diff := sha256.New()
	tmp := out + ".tmp"
	defer os.Remove(tmp)
	if err := runMkfs(ctx, m, io.TeeReader(tarStream, diff), tmp, u.String()); err != nil {
		return nil, fmt.Errorf("layer %s: %w", blobPath, err)
	}
	// mkfs stops at the tar's end marker; the diff ID covers the whole stream.
	if _, err := io.Copy(diff, tarStream); err != nil {
		return nil, fmt.Errorf("layer %s: %w", blobPath, err)
	}
	res.DiffID = "sha256:" + hex.EncodeToString(diff.Sum(nil))

	if res.Verity, err = AppendVerity(tmp, DefaultSalt, u); err != nil {
		return nil, fmt.Errorf("layer %s: dm-verity: %w", blobPath, err)
	}
	meta, err := json.MarshalIndent(struct {
		RootHash   string `json:"roothash"`
		HashOffset uint64 `json:"hashoffset"`
	}{res.Verity.RootHashHex(), res.Verity.HashOffset}, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(res.Metadata, meta, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, err
	}
	return res, nil
}

func runMkfs(ctx context.Context, m *Mkfs, stdin io.Reader, out, fsUUID string) error {
	args := append(append([]string{}, MkfsArgs...), "-U", fsUUID, out)
	cmd := exec.CommandContext(ctx, m.Path, args...)
	cmd.Stdin = stdin
	// SOURCE_DATE_EPOCH would force extended inodes and clamp times, which a
	// node's containerd does not do: drop it so both build the same bytes.
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SOURCE_DATE_EPOCH=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mkfs.erofs %s (erofs-utils %s): %w: %s", strings.Join(args, " "), m.Version, err,
			strings.TrimSpace(stderr.String()))
	}
	return nil
}

// decompress recognises gzip and zstd by their magic numbers, as layer
// media types may lie (or be absent for a file on disk).
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// OutputName is the file name for the layer with this blob digest in a
// directory of several.
func OutputName(blobDigest string) string {
	return filepath.Base(strings.TrimPrefix(blobDigest, "sha256:")) + ".erofs"
}
