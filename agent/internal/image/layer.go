package image

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containers/ocicrypt/blockcipher"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/types"

	"github.com/cocoon-tee/cocoon/agent/internal/image/unpack"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// layerAttempts bounds retries of one layer on transient errors.
const layerAttempts = 4

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// fetchLayer downloads, verifies, decrypts, decompresses and unpacks one
// layer into dir, retrying transient network failures from scratch. key
// holds the cipher options layerKey opened for an encrypted layer.
func (p *Puller) fetchLayer(ctx context.Context, src types.ImageSource, info types.BlobInfo, diffID digest.Digest, key *blockcipher.LayerBlockCipherOptions, dir string) error {
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := p.fetchLayerOnce(ctx, src, info, diffID, key, dir)
		if err == nil || attempt == layerAttempts || !transient(ctx, err) {
			return err
		}
		p.o.Log.WarnContext(ctx, "layer download failed, retrying", "layer", info.Digest, "attempt", attempt, "error", err)
		if rerr := resetDir(dir); rerr != nil {
			return errors.Join(err, rerr)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
		backoff *= 2
	}
}

func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Mkdir(dir, 0o755)
}

func (p *Puller) fetchLayerOnce(ctx context.Context, src types.ImageSource, info types.BlobInfo, diffID digest.Digest, key *blockcipher.LayerBlockCipherOptions, dir string) error {
	if err := info.Digest.Validate(); err != nil {
		return errs.Newf(errdefs.ErrInvalidArgument, "layer digest %q: %v", info.Digest, err)
	}
	if isEncrypted(info) != (key != nil) {
		return fmt.Errorf("layer %s: encrypted layers need their key, plain layers none: %w", info.Digest, errdefs.ErrFailedPrecondition)
	}
	rc, _, err := src.GetBlob(ctx, info, none.NoCache)
	if err != nil {
		return classifyRegistryErr(fmt.Errorf("fetch blob: %w", err))
	}
	defer rc.Close()

	// Compressed (or encrypted) stream, as named by the manifest.
	var blob io.Reader = rc
	if info.Size > 0 {
		blob = io.LimitReader(rc, info.Size+1)
	}
	blobHash := info.Digest.Algorithm().Digester()
	counted := &counter{r: io.TeeReader(blob, blobHash.Hash())}

	var plain io.Reader = counted
	var cs *cipherStream
	if key != nil {
		if cs, err = decryptLayer(counted, *key); err != nil {
			return err
		}
		plain = cs
	}
	br := bufio.NewReaderSize(plain, 64<<10)
	head, _ := br.Peek(4)
	var tarStream io.Reader = br
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := pgzip.NewReaderN(br, 1<<20, 4)
		if err != nil {
			return fmt.Errorf("gzip: %w", errdefs.ErrInvalidArgument.WithMessage(err.Error()))
		}
		defer zr.Close()
		tarStream = zr
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		tarStream = zr
	}
	diffHash := diffID.Algorithm().Digester()
	if _, err := unpack.Unpack(ctx, io.TeeReader(tarStream, diffHash.Hash()), dir, p.o.Unpack); err != nil {
		if cs != nil && cs.Err() != nil {
			return cs.Err()
		}
		if d := drainErr(counted, info, blobHash); d != nil && !errors.Is(err, unpack.ErrUnsafe) {
			// A corrupted blob often shows as a decompression error first;
			// the digest is the more useful diagnosis.
			return errors.Join(d, err)
		}
		return fmt.Errorf("unpack: %w", err)
	}
	if err := drainErr(counted, info, blobHash); err != nil {
		return err
	}
	if got := diffHash.Digest(); got != diffID {
		return fmt.Errorf("uncompressed layer is %s, config says diff_id %s: %w", got, diffID, ErrDigest)
	}
	return nil
}

// drainErr reads what is left of the blob (bounded by its size) and checks
// its digest and size.
func drainErr(c *counter, info types.BlobInfo, h digest.Digester) error {
	if _, err := io.Copy(io.Discard, c); err != nil {
		return fmt.Errorf("read blob: %w", err)
	}
	if info.Size > 0 && c.n != info.Size {
		return fmt.Errorf("blob is %d bytes, manifest says %d: %w", c.n, info.Size, ErrDigest)
	}
	if got := h.Digest(); got != info.Digest {
		return fmt.Errorf("blob digest is %s, manifest says %s: %w", got, info.Digest, ErrDigest)
	}
	return nil
}

type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// transient says whether a failed layer attempt may succeed when repeated:
// network trouble yes; bad content, refusals and cancellation no.
func transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	for _, permanent := range []error{ErrDigest, unpack.ErrUnsafe, unpack.ErrTooLarge, errdefs.ErrPermissionDenied, errdefs.ErrNotFound, errdefs.ErrUnauthenticated, errdefs.ErrInvalidArgument, errDecrypt} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	return true
}

// classifyRegistryErr maps containers/image failures onto errdefs classes
// so the host sees NOT_FOUND / UNAUTHENTICATED / PERMISSION_DENIED instead of
// an opaque UNKNOWN.
func classifyRegistryErr(err error) error {
	var unauth docker.ErrUnauthorizedForCredentials
	switch {
	case errors.As(err, &unauth),
		strings.Contains(err.Error(), "authentication required"), strings.Contains(err.Error(), "unauthorized"):
		return fmt.Errorf("%s: %w: %w", textNotAuthorized, err, errdefs.ErrUnauthenticated)
	case strings.Contains(err.Error(), "manifest unknown"), strings.Contains(err.Error(), "not found"), strings.Contains(err.Error(), "name unknown"):
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case strings.Contains(err.Error(), "is blocked"):
		return fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
	}
	return err
}
