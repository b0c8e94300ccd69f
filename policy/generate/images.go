package generate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/types"
)

// Bounds on what a registry may send us.
const (
	maxManifest = 4 << 20
	maxConfig   = 4 << 20
)

// ImageOptions say how images are reached: the same registries.conf and
// auth.json files containers/image reads on any host, and the platform the
// pod runs on.
type ImageOptions struct {
	RegistriesConf string // registries.conf path ("" = the system's)
	AuthFile       string // auth.json path ("" = the default locations)
	OS, Arch       string // target platform ("" = linux/amd64)
	Variant        string
	CacheDir       string // content-addressed cache ("" = none)
}

// ImageInfo is what the policy needs from one image.
type ImageInfo struct {
	// Ref is what the pod spec said; Pinned is name@sha256:<top manifest>.
	Ref, Pinned string
	Config      ocispec.ImageConfig
	// Passwd and Group are the image's /etc/passwd and /etc/group ("" when
	// absent).
	Passwd, Group string
	// Fetched counts blob bytes downloaded for this image; Compressed is
	// the total compressed size of its layers.
	Fetched, Compressed int64
	// Layers are the platform manifest's layer blob digests, lowest
	// first: the keys of its layers' cached root hashes.
	Layers []string
	// RootHashes are the dm-verity root hashes of its layers as the node's
	// EROFS snapshotter builds them, top layer (partition 1) first; nil
	// unless layers are pinned.
	RootHashes []string
}

// Images resolves and reads images, through the cache when it has one.
type Images struct {
	sys   *types.SystemContext
	cache *Cache
	// Requests counts blob requests made to registries.
	Requests int
}

// NewImages prepares image access.
func NewImages(o ImageOptions) (*Images, error) {
	sys := &types.SystemContext{
		SystemRegistriesConfPath: o.RegistriesConf,
		AuthFilePath:             o.AuthFile,
		OSChoice:                 o.OS,
		ArchitectureChoice:       o.Arch,
		VariantChoice:            o.Variant,
		DockerRegistryUserAgent:  "cocoonctl",
	}
	if sys.OSChoice == "" {
		sys.OSChoice = "linux"
	}
	if sys.ArchitectureChoice == "" {
		sys.ArchitectureChoice = "amd64"
	}
	im := &Images{sys: sys}
	if o.CacheDir != "" {
		c, err := OpenCache(o.CacheDir)
		if err != nil {
			return nil, err
		}
		im.cache = c
	}
	return im, nil
}

// Resolve pins ref to its manifest digest and reads its config and users.
func (im *Images) Resolve(ctx context.Context, ref string) (*ImageInfo, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	named = reference.TagNameOnly(named)
	iref, err := docker.NewReference(named)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	src, err := iref.NewImageSource(ctx, im.sys)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", named, err)
	}
	defer src.Close()
	top, topType, err := im.manifest(ctx, src, named, nil)
	if err != nil {
		return nil, err
	}
	topDigest, err := manifest.Digest(top)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", named, err)
	}
	if c, ok := named.(reference.Canonical); ok && c.Digest() != topDigest {
		return nil, fmt.Errorf("image %s: registry sent manifest %s", named, topDigest)
	}
	info := &ImageInfo{Ref: ref, Pinned: reference.TrimNamed(named).Name() + "@" + topDigest.String()}
	m, err := im.instance(ctx, src, named, top, topType)
	if err != nil {
		return nil, err
	}
	raw, err := im.blob(ctx, src, m.ConfigInfo(), maxConfig)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", named, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", named, err)
	}
	info.Config = cfg.Config
	for _, l := range m.LayerInfos() {
		info.Compressed += l.Size
		if !l.EmptyLayer {
			info.Layers = append(info.Layers, l.Digest.String())
		}
	}
	if err := im.users(ctx, src, m, info); err != nil {
		return nil, fmt.Errorf("image %s: %w", named, err)
	}
	return info, nil
}

// manifest fetches a manifest (the tag's when d is nil).
func (im *Images) manifest(ctx context.Context, src types.ImageSource, named reference.Named, d *digest.Digest) ([]byte, string, error) {
	if d != nil && im.cache != nil {
		if b, mt, ok := im.cache.Manifest(*d); ok {
			return b, mt, nil
		}
	}
	b, mt, err := src.GetManifest(ctx, d)
	if err != nil {
		return nil, "", fmt.Errorf("image %s: manifest: %w", named, err)
	}
	if len(b) > maxManifest {
		return nil, "", fmt.Errorf("image %s: manifest of %d bytes", named, len(b))
	}
	if d != nil {
		if ok, err := manifest.MatchesDigest(b, *d); err != nil || !ok {
			return nil, "", fmt.Errorf("image %s: manifest does not match %s", named, *d)
		}
	}
	if im.cache != nil {
		if err := im.cache.PutManifest(b, mt); err != nil {
			return nil, "", err
		}
	}
	return b, mt, nil
}

// instance picks the target platform's manifest out of a list.
func (im *Images) instance(ctx context.Context, src types.ImageSource, named reference.Named, b []byte, mt string) (manifest.Manifest, error) {
	if manifest.MIMETypeIsMultiImage(mt) {
		list, err := manifest.ListFromBlob(b, mt)
		if err != nil {
			return nil, fmt.Errorf("image %s: manifest list: %w", named, err)
		}
		d, err := list.ChooseInstance(im.sys)
		if err != nil {
			return nil, fmt.Errorf("image %s: no instance for %s/%s: %w", named, im.sys.OSChoice, im.sys.ArchitectureChoice, err)
		}
		if b, mt, err = im.manifest(ctx, src, named, &d); err != nil {
			return nil, err
		}
	}
	m, err := manifest.FromBlob(b, manifest.NormalizedMIMEType(mt))
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", named, err)
	}
	return m, nil
}

// blob reads a small blob whole, verified against its digest.
func (im *Images) blob(ctx context.Context, src types.ImageSource, bi types.BlobInfo, limit int64) ([]byte, error) {
	if im.cache != nil {
		if b, ok := im.cache.Blob(bi.Digest); ok {
			return b, nil
		}
	}
	if bi.Size > limit {
		return nil, fmt.Errorf("blob %s of %d bytes", bi.Digest, bi.Size)
	}
	im.Requests++
	rc, _, err := src.GetBlob(ctx, bi, none.NoCache)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit || bi.Digest.Validate() != nil || bi.Digest.Algorithm().FromBytes(b) != bi.Digest {
		return nil, fmt.Errorf("blob %s does not match its digest", bi.Digest)
	}
	if im.cache != nil {
		if err := im.cache.PutBlob(bi.Digest, b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// users reads /etc/passwd and /etc/group, from the cache (keyed by the
// platform manifest's layers) or by streaming layers top-down.
func (im *Images) users(ctx context.Context, src types.ImageSource, m manifest.Manifest, info *ImageInfo) error {
	layers := m.LayerInfos()
	var ids []string
	for _, l := range layers {
		ids = append(ids, l.Digest.String())
	}
	key := digest.FromString(strings.Join(ids, ","))
	if im.cache != nil {
		if f, ok := im.cache.EtcFiles(key); ok {
			info.Passwd, info.Group = f.Passwd, f.Group
			return nil
		}
	}
	var sc etcScan
	for i := len(layers) - 1; i >= 0 && !sc.settled(); i-- {
		n, err := im.scanLayer(ctx, src, layers[i].BlobInfo, &sc)
		info.Fetched += n
		if err != nil {
			return fmt.Errorf("layer %s: %w", layers[i].Digest, err)
		}
	}
	info.Passwd, info.Group = sc.passwd.text, sc.group.text
	if im.cache != nil {
		return im.cache.PutEtcFiles(key, EtcFiles{Passwd: info.Passwd, Group: info.Group})
	}
	return nil
}

// scanLayer streams one layer and stops as soon as the scan is settled.
// It reads the layer in growing byte ranges when the source can, so the
// registry sends little more than the scan reads; else as one stream,
// closed as soon as the scan is settled. It returns the compressed bytes
// read.
func (im *Images) scanLayer(ctx context.Context, src types.ImageSource, bi types.BlobInfo, sc *etcScan) (int64, error) {
	im.Requests++
	rc, err := im.openLayer(ctx, src, bi)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	cr := &countingReader{r: rc}
	err = sc.layer(cr)
	return cr.n, err
}

// openLayer starts reading a layer: by ranges when the source and the
// registry support them (a registry that answers a range request with
// anything but the range is read whole).
func (im *Images) openLayer(ctx context.Context, src types.ImageSource, bi types.BlobInfo) (io.ReadCloser, error) {
	if r := rangesOf(src); r != nil && bi.Size > 0 {
		rr := newRangeReader(ctx, r, bi)
		if err := rr.open(); err == nil {
			return rr, nil
		}
	}
	rc, _, err := src.GetBlob(ctx, bi, none.NoCache)
	return rc, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
