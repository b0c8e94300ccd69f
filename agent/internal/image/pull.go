package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containers/ocicrypt/blockcipher"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"

	"github.com/cocoon-tee/cocoon/agent/internal/image/layerstore"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// maxConfigBlob bounds the image config we read into memory.
const maxConfigBlob = 8 << 20

// ErrDigest classes content that does not match its digest.
var ErrDigest = fmt.Errorf("digest mismatch: %w", errdefs.ErrDataLoss)

// Image is a pulled image: its config and the layers it holds in the
// store, bottom first. Release drops the layer references.
type Image struct {
	Ref            string
	ManifestDigest digest.Digest
	Config         ocispec.Image
	// Layers are the layer directories, bottom layer first.
	Layers []string
	// held names the store layers this image holds a reference on.
	held   []layerstore.Key
	puller *Puller
	// Fetched counts layers this pull downloaded (others were shared).
	Fetched int
}

// Release gives the image's layers back to the store.
func (im *Image) Release() error {
	var errs []error
	for _, id := range im.held {
		errs = append(errs, im.puller.o.Store.Release(id))
	}
	im.held = nil
	return errors.Join(errs...)
}

// Pull fetches ref, checks it against the signature policy and makes sure
// every layer is unpacked in the store.
func (p *Puller) Pull(ctx context.Context, ref string) (*Image, error) {
	ctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	named, err := p.parseRef(ref)
	if err != nil {
		return nil, err
	}
	iref, err := docker.NewReference(named)
	if err != nil {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "image %q: %v", ref, err)
	}
	src, err := iref.NewImageSource(ctx, p.sys)
	if err != nil {
		return nil, classifyRegistryErr(fmt.Errorf("image %s: %w", named, err))
	}
	defer src.Close()

	// One UnparsedImage for the policy check and for what we pull: it caches
	// the manifest, so the registry cannot show the policy one manifest and
	// hand us another.
	unparsed := image.UnparsedInstance(src, nil)
	verifiedBy, err := p.checkPolicy(ctx, iref, unparsed)
	if err != nil {
		return nil, err
	}
	top, topType, err := unparsed.Manifest(ctx)
	if err != nil {
		return nil, classifyRegistryErr(fmt.Errorf("image %s: manifest: %w", named, err))
	}
	if canonical, ok := named.(reference.Canonical); ok {
		if match, err := manifest.MatchesDigest(top, canonical.Digest()); err != nil || !match {
			return nil, fmt.Errorf("image %s: manifest does not match the reference digest: %w", named, ErrDigest)
		}
	}
	topDigest, err := manifest.Digest(top)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", named, err)
	}
	man, err := p.instance(ctx, src, top, topType)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", named, err)
	}
	cfg, err := p.config(ctx, src, man)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", named, err)
	}
	im := &Image{Ref: named.String(), ManifestDigest: topDigest, Config: cfg, puller: p}
	if err := p.layers(ctx, src, man, im); err != nil {
		return nil, errors.Join(fmt.Errorf("image %s: %w", named, err), im.Release())
	}
	p.o.Log.InfoContext(ctx, "image pulled", "image", ref, "resolved", named.String(), "manifest", topDigest, "verified_by", verifiedBy, "layers", len(im.Layers), "downloaded", im.Fetched)
	if p.o.OnPull != nil {
		p.o.OnPull(ctx, PullEvent{Image: ref, Resolved: named.String(), ManifestDigest: topDigest, VerifiedBy: verifiedBy})
	}
	return im, nil
}

// parseRef qualifies short names with the first unqualified-search registry
// of registries.conf (docker.io when there is none) and adds :latest.
func (p *Puller) parseRef(ref string) (reference.Named, error) {
	if ref == "" || len(ref) > 4096 {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "image reference of %d bytes", len(ref))
	}
	first, _, _ := strings.Cut(ref, "/")
	qualified := strings.Contains(ref, "/") && (strings.ContainsAny(first, ".:") || first == "localhost")
	if !qualified {
		regs, err := sysregistriesv2.UnqualifiedSearchRegistries(p.sys)
		if err != nil {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "registries.conf: %v", err)
		}
		if len(regs) > 0 {
			ref = regs[0] + "/" + ref
		}
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "image reference %q: %v", ref, err)
	}
	return reference.TagNameOnly(named), nil
}

// errNoPolicy says why a confidential agent without a policy refuses and
// what would change that.
const errNoPolicy = "confidential mode refuses to pull without an image security policy: set image_security_policy_uri in the [image] table of initdata's cdh.toml (or accept_digest_pinned_without_policy = true to accept references pinned by digest)"

func (p *Puller) checkPolicy(ctx context.Context, iref types.ImageReference, unparsed types.UnparsedImage) (string, error) {
	if p.policy == nil {
		if !p.o.RequirePolicy {
			return "none", nil
		}
		// New admitted a missing policy only for digest-pinned
		// references; Pull checks the manifest against the digest.
		if _, pinned := iref.DockerReference().(reference.Canonical); !pinned {
			return "", errs.Newf(errdefs.ErrPermissionDenied, "%s: image %s is not pinned by digest, and without an image security policy a confidential agent accepts only name@sha256:... references", textPolicyRejected, iref.DockerReference())
		}
		return "digest", nil
	}
	pc, err := signature.NewPolicyContext(p.policy)
	if err != nil {
		return "", errs.Newf(errdefs.ErrInvalidArgument, "image security policy: %v", err)
	}
	defer pc.Destroy()
	ok, err := pc.IsRunningImageAllowed(ctx, unparsed)
	if !ok || err != nil {
		if err == nil {
			err = errors.New("rejected")
		}
		return "", errs.Newf(errdefs.ErrPermissionDenied, "%s: image %s refused by the image security policy: %v", textPolicyRejected, iref.DockerReference(), err)
	}
	return requirementTypes(p.policyRaw, iref), nil
}

// requirementTypes names the requirement types of the policy scope that
// applied to iref, for the pull event.
func requirementTypes(raw []byte, iref types.ImageReference) string {
	var doc struct {
		Default    []struct{ Type string } `json:"default"`
		Transports map[string]map[string][]struct {
			Type string `json:"type"`
		} `json:"transports"`
	}
	if json.Unmarshal(raw, &doc) != nil {
		return "policy"
	}
	pick := func(rs []struct {
		Type string `json:"type"`
	}) string {
		var t []string
		for _, r := range rs {
			t = append(t, r.Type)
		}
		return strings.Join(t, "+")
	}
	if scopes, ok := doc.Transports["docker"]; ok {
		for _, s := range append([]string{iref.PolicyConfigurationIdentity()}, iref.PolicyConfigurationNamespaces()...) {
			if rs, ok := scopes[s]; ok {
				return pick(rs)
			}
		}
		if rs, ok := scopes[""]; ok {
			return pick(rs)
		}
	}
	var t []string
	for _, r := range doc.Default {
		t = append(t, r.Type)
	}
	return strings.Join(t, "+")
}

// instance picks the platform's manifest out of a list, verifying the
// instance against the digest the (already verified) list names.
func (p *Puller) instance(ctx context.Context, src types.ImageSource, blob []byte, mt string) (manifest.Manifest, error) {
	if manifest.MIMETypeIsMultiImage(mt) {
		list, err := manifest.ListFromBlob(blob, mt)
		if err != nil {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "manifest list: %v", err)
		}
		d, err := list.ChooseInstance(p.sys)
		if err != nil {
			return nil, fmt.Errorf("manifest list: %w", errdefs.ErrNotFound.WithMessage(err.Error()))
		}
		blob, mt, err = src.GetManifest(ctx, &d)
		if err != nil {
			return nil, classifyRegistryErr(fmt.Errorf("manifest %s: %w", d, err))
		}
		if ok, err := manifest.MatchesDigest(blob, d); err != nil || !ok {
			return nil, fmt.Errorf("manifest %s: %w", d, ErrDigest)
		}
	}
	switch manifest.NormalizedMIMEType(mt) {
	case ocispec.MediaTypeImageManifest, manifest.DockerV2Schema2MediaType:
	default:
		return nil, errs.Newf(errdefs.ErrNotImplemented, "manifest type %q is not supported", mt)
	}
	m, err := manifest.FromBlob(blob, manifest.NormalizedMIMEType(mt))
	if err != nil {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "manifest: %v", err)
	}
	return m, nil
}

func (p *Puller) config(ctx context.Context, src types.ImageSource, m manifest.Manifest) (ocispec.Image, error) {
	ci := m.ConfigInfo()
	if ci.Size > maxConfigBlob {
		return ocispec.Image{}, errs.Newf(errdefs.ErrInvalidArgument, "image config of %d bytes", ci.Size)
	}
	rc, _, err := src.GetBlob(ctx, ci, none.NoCache)
	if err != nil {
		return ocispec.Image{}, classifyRegistryErr(fmt.Errorf("config %s: %w", ci.Digest, err))
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxConfigBlob+1))
	if err != nil {
		return ocispec.Image{}, fmt.Errorf("config %s: %w", ci.Digest, err)
	}
	if len(raw) > maxConfigBlob {
		return ocispec.Image{}, errdefs.ErrInvalidArgument.WithMessage("image config too large")
	}
	if ci.Digest.Validate() != nil || ci.Digest.Algorithm().FromBytes(raw) != ci.Digest {
		return ocispec.Image{}, fmt.Errorf("config %s: %w", ci.Digest, ErrDigest)
	}
	var img ocispec.Image
	if err := json.Unmarshal(raw, &img); err != nil {
		return ocispec.Image{}, errs.Newf(errdefs.ErrInvalidArgument, "image config: %v", err)
	}
	return img, nil
}

// layers unpacks every layer not already in the store, at most
// p.concurrent at a time, and collects the references in order.
func (p *Puller) layers(ctx context.Context, src types.ImageSource, m manifest.Manifest, im *Image) error {
	infos := m.LayerInfos()
	var nonEmpty []manifest.LayerInfo
	for _, l := range infos {
		if !l.EmptyLayer {
			nonEmpty = append(nonEmpty, l)
		}
	}
	if len(nonEmpty) != len(im.Config.RootFS.DiffIDs) {
		return errs.Newf(errdefs.ErrInvalidArgument, "manifest has %d layers but config lists %d diff_ids", len(nonEmpty), len(im.Config.RootFS.DiffIDs))
	}
	if len(nonEmpty) == 0 {
		return errdefs.ErrInvalidArgument.WithMessage("image has no layers")
	}
	paths := make([]string, len(nonEmpty))
	ids := make([]layerstore.Key, len(nonEmpty))
	held := make([]bool, len(nonEmpty))
	fetched := make([]bool, len(nonEmpty))
	errs := make([]error, len(nonEmpty))
	sem := make(chan struct{}, p.concurrent)
	var wg sync.WaitGroup
	// cause is the failure that cancelled the other layers. Their errors
	// do not always wrap context.Canceled (the unpacker flattens read
	// errors), so the cause is recorded when it happens.
	var (
		causeMu sync.Mutex
		cause   error
	)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, l := range nonEmpty {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-lctx.Done():
				errs[i] = lctx.Err()
				return
			}
			defer func() { <-sem }()
			id, path, filled, err := p.acquireLayer(lctx, src, l, im.Config.RootFS.DiffIDs[i])
			if err != nil {
				errs[i] = fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
				causeMu.Lock()
				if cause == nil && lctx.Err() == nil {
					cause = errs[i]
				}
				causeMu.Unlock()
				cancel()
				return
			}
			paths[i], ids[i], held[i], fetched[i] = path, id, true, filled
		}()
	}
	wg.Wait()
	for i := range nonEmpty {
		if held[i] {
			im.held = append(im.held, ids[i])
			if fetched[i] {
				im.Fetched++
			}
		}
	}
	// Report the real failure, not the cancellations it caused.
	if cause != nil {
		return cause
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	im.Layers = paths
	return nil
}

// acquireLayer takes a store reference on one manifest layer, filling it
// from the registry when the store does not hold it.
func (p *Puller) acquireLayer(ctx context.Context, src types.ImageSource, l manifest.LayerInfo, diffID digest.Digest) (layerstore.Key, string, bool, error) {
	// A stored layer serves only manifests naming the blob that produced
	// it: the diff_ids in a config are public, so any image could claim
	// them.
	id := layerstore.Key{Blob: l.Digest, DiffID: diffID}
	var key *blockcipher.LayerBlockCipherOptions
	if isEncrypted(l.BlobInfo) {
		// This pull's own key is resolved (the KBS asked again) before the
		// store is consulted, and a stored plaintext is found only under
		// the digest of the key that produced it.
		opts, err := p.layerKey(ctx, l.BlobInfo)
		if err != nil {
			return id, "", false, err
		}
		key, id.KeyDigest = &opts, keyDigest(opts.Private)
	}
	path, filled, err := p.o.Store.Acquire(ctx, id, func(ctx context.Context, dir string) error {
		return p.fetchLayer(ctx, src, l.BlobInfo, diffID, key, dir)
	})
	return id, path, filled, err
}
