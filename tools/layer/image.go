package layer

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/types"
)

// maxManifest bounds a manifest read from a registry.
const maxManifest = 4 << 20

// ImageOptions say where an image comes from.
type ImageOptions struct {
	RegistriesConf string // registries.conf ("" = the system's)
	AuthFile       string // auth.json ("" = the default locations)
	OS, Arch       string // platform of a manifest list ("" = linux/amd64)
	Insecure       bool   // plain-HTTP or unverified-TLS registry (tests)
}

// BuildImage builds every layer of the image ref into dir, one
// <blob hex>.erofs (+ .dmverity) per layer, in manifest order (lowest
// first). ref is "docker://REF", "oci:DIR[:TAG]" or a bare registry
// reference.
func BuildImage(ctx context.Context, m *Mkfs, ref, dir string, o ImageOptions) ([]*Result, error) {
	iref, err := parseRef(ref)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	sys := &types.SystemContext{
		SystemRegistriesConfPath: o.RegistriesConf,
		AuthFilePath:             o.AuthFile,
		OSChoice:                 o.OS,
		ArchitectureChoice:       o.Arch,
		DockerRegistryUserAgent:  "cocoonctl",
	}
	if sys.OSChoice == "" {
		sys.OSChoice = "linux"
	}
	if sys.ArchitectureChoice == "" {
		sys.ArchitectureChoice = "amd64"
	}
	if o.Insecure {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	}
	src, err := iref.NewImageSource(ctx, sys)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	defer src.Close()
	man, err := instance(ctx, src, sys, ref)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []*Result
	for i, l := range man.LayerInfos() {
		if l.EmptyLayer {
			continue
		}
		res, err := buildBlob(ctx, m, src, l.BlobInfo, dir)
		if err != nil {
			return nil, fmt.Errorf("image %s layer %d (%s): %w", ref, i, l.Digest, err)
		}
		out = append(out, res)
	}
	return out, nil
}

// buildBlob downloads one layer blob beside its image, checks its digest
// and builds it.
func buildBlob(ctx context.Context, m *Mkfs, src types.ImageSource, bi types.BlobInfo, dir string) (*Result, error) {
	rc, _, err := src.GetBlob(ctx, bi, none.NoCache)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, ".blob-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, rc); err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	res, err := Build(ctx, m, tmp.Name(), filepath.Join(dir, OutputName(bi.Digest.String())))
	if err != nil {
		return nil, err
	}
	if res.BlobDigest != bi.Digest.String() {
		os.Remove(res.Image)
		os.Remove(res.Metadata)
		return nil, fmt.Errorf("blob digest %s, manifest says %s", res.BlobDigest, bi.Digest)
	}
	return res, nil
}

// instance reads the image's manifest, choosing the platform's from a list.
func instance(ctx context.Context, src types.ImageSource, sys *types.SystemContext, ref string) (manifest.Manifest, error) {
	b, mt, err := src.GetManifest(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", ref, err)
	}
	if manifest.MIMETypeIsMultiImage(mt) {
		list, err := manifest.ListFromBlob(b, mt)
		if err != nil {
			return nil, fmt.Errorf("image %s: manifest list: %w", ref, err)
		}
		d, err := list.ChooseInstance(sys)
		if err != nil {
			return nil, fmt.Errorf("image %s: no %s/%s instance: %w", ref, sys.OSChoice, sys.ArchitectureChoice, err)
		}
		if b, mt, err = src.GetManifest(ctx, &d); err != nil {
			return nil, fmt.Errorf("image %s: manifest %s: %w", ref, d, err)
		}
		if ok, err := manifest.MatchesDigest(b, d); err != nil || !ok {
			return nil, fmt.Errorf("image %s: manifest does not match %s", ref, d)
		}
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("image %s: manifest of %d bytes", ref, len(b))
	}
	m, err := manifest.FromBlob(b, manifest.NormalizedMIMEType(mt))
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", ref, err)
	}
	return m, nil
}

// parseRef accepts the two transports a layer builder needs: registries
// ("docker://" or a bare reference) and OCI layouts ("oci:DIR[:TAG]").
// Only these two are linked in, so cocoonctl does not pull in every
// storage backend of containers/image.
func parseRef(ref string) (types.ImageReference, error) {
	if rest, ok := strings.CutPrefix(ref, "oci:"); ok {
		return layout.ParseReference(rest)
	}
	return docker.ParseReference("//" + strings.TrimPrefix(ref, "docker://"))
}
