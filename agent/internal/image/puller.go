// Package image pulls container images inside the guest: it resolves the
// reference against registries.conf, fetches manifest, config and layers
// from the registry with containers/image, enforces the containers
// policy.json signature rules, decrypts encrypted layers, unpacks layers
// into the shared layer store and mounts container root file systems as
// overlays for the image_guest_pull storage driver.
package image

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containers/ocicrypt/config"
	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
	"golang.org/x/net/http/httpproxy"

	"github.com/cocoon-tee/cocoon/agent/internal/image/imgconfig"
	"github.com/cocoon-tee/cocoon/agent/internal/image/layerstore"
	"github.com/cocoon-tee/cocoon/agent/internal/image/unpack"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// PullEvent records one successful pull, for the runtime measurement log.
type PullEvent struct {
	// Image is the reference as requested.
	Image string
	// Resolved is the fully qualified reference that was pulled.
	Resolved string
	// ManifestDigest is the digest of the manifest (or index) the reference
	// resolved to.
	ManifestDigest digest.Digest
	// VerifiedBy names the policy requirements that admitted the image
	// ("signedBy", "sigstoreSigned", "insecureAcceptAnything", or "none"
	// when no policy is configured).
	VerifiedBy string
}

// Options configure a Puller.
type Options struct {
	// Config is the [image] table of cdh.toml.
	Config imgconfig.Config
	// Resolver fetches the URIs Config names (file://, kbs://).
	Resolver imgconfig.Resolver
	// Store holds unpacked layers.
	Store *layerstore.Store
	// KeyResolver resolves key ids of the attestation-agent key provider;
	// nil when no KBS is available.
	KeyResolver KeyResolver
	// OnPull, when set, is called after every successful pull.
	OnPull func(ctx context.Context, ev PullEvent)
	// HTTPSProxy, HTTPProxy and NoProxy come from the agent configuration;
	// the image config's image_pull_proxy takes precedence.
	HTTPSProxy, HTTPProxy, NoProxy string
	// Timeout bounds one pull (Kata's image_pull_timeout).
	Timeout time.Duration
	// RequirePolicy refuses to pull when no signature policy is configured
	// (confidential deployments), except references pinned by digest when
	// Config.AcceptDigestPinnedWithoutPolicy is set.
	RequirePolicy bool
	// Unpack bounds each layer's extraction.
	Unpack unpack.Options
	// Platform overrides the OS/architecture chosen from manifest lists.
	OS, Arch string
	Log      *slog.Logger
}

// Puller pulls images into the layer store.
type Puller struct {
	o          Options
	sys        *types.SystemContext
	policy     *signature.Policy
	policyRaw  []byte
	decrypt    *config.DecryptConfig
	concurrent int
}

// New resolves the configured documents (policy, auth, registries,
// certificates) once and prepares the system context every pull shares.
func New(ctx context.Context, o Options) (*Puller, error) {
	if o.Store == nil {
		return nil, fmt.Errorf("image puller: no layer store")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Resolver == nil {
		o.Resolver = imgconfig.Schemes{"file": imgconfig.FileResolver{}}
	}
	if o.Timeout <= 0 {
		o.Timeout = 1200 * time.Second
	}
	conf := filepath.Join(o.Store.Root(), "conf")
	if err := os.RemoveAll(conf); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(conf, "registries.d"), 0o700); err != nil {
		return nil, err
	}
	p := &Puller{o: o, concurrent: o.Config.MaxConcurrentLayerDownloadsPerImage}
	if p.concurrent <= 0 {
		p.concurrent = imgconfig.DefaultMaxConcurrentLayerDownloads
	}
	sys := &types.SystemContext{
		// Never read the guest's /etc/containers: only what the
		// (attested) configuration names applies.
		SystemRegistriesConfPath:    filepath.Join(conf, "registries.conf"),
		SystemRegistriesConfDirPath: filepath.Join(conf, "registries.conf.d"),
		RegistriesDirPath:           filepath.Join(conf, "registries.d"),
		AuthFilePath:                filepath.Join(conf, "auth.json"),
		DockerPerHostCertDirPath:    filepath.Join(conf, "certs.d"),
		BlobInfoCacheDir:            filepath.Join(conf, "cache"),
		OSChoice:                    o.OS,
		ArchitectureChoice:          o.Arch,
		DockerRegistryUserAgent:     "cocoon-agent",
	}
	files := []struct{ uri, path, what string }{
		{o.Config.RegistryConfigurationURI, sys.SystemRegistriesConfPath, "registry_configuration_uri"},
		{o.Config.AuthenticatedRegistryCredentialsURI, sys.AuthFilePath, "authenticated_registry_credentials_uri"},
		{o.Config.SigstoreConfigURI, filepath.Join(sys.RegistriesDirPath, "sigstore.yaml"), "sigstore_config_uri"},
	}
	for _, f := range files {
		data := []byte{}
		if f.uri != "" {
			var err error
			if data, err = o.Resolver.Resolve(ctx, f.uri); err != nil {
				return nil, fmt.Errorf("%s: %w", f.what, err)
			}
		} else if f.what == "authenticated_registry_credentials_uri" {
			data = []byte(`{"auths":{}}`)
		}
		if f.what == "sigstore_config_uri" {
			var err error
			if data, err = sigstoreAttachmentsByDefault(data); err != nil {
				return nil, err
			}
		}
		if err := os.WriteFile(f.path, data, 0o600); err != nil {
			return nil, err
		}
	}
	if len(o.Config.ExtraRootCertificates) > 0 {
		dir := filepath.Join(conf, "certs")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		for i, pem := range o.Config.ExtraRootCertificates {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("extra-%d.crt", i)), []byte(pem), 0o600); err != nil {
				return nil, err
			}
		}
		sys.DockerCertPath = dir
	}
	pc := httpproxy.Config{HTTPSProxy: o.HTTPSProxy, HTTPProxy: o.HTTPProxy, NoProxy: o.NoProxy}
	if px := o.Config.ImagePullProxy; px.HTTPSProxy != "" || px.HTTPProxy != "" {
		pc = httpproxy.Config{HTTPSProxy: px.HTTPSProxy, HTTPProxy: px.HTTPProxy, NoProxy: px.NoProxy}
	}
	if pc.HTTPSProxy != "" || pc.HTTPProxy != "" {
		fn := pc.ProxyFunc()
		sys.DockerProxy = func(u *url.URL) (*url.URL, error) { return fn(u) }
	}
	p.sys = sys

	if uri := o.Config.ImageSecurityPolicyURI; uri != "" {
		raw, err := o.Resolver.Resolve(ctx, uri)
		if err != nil {
			return nil, fmt.Errorf("image_security_policy_uri: %w", err)
		}
		if raw, err = resolveKeyPaths(ctx, raw, o.Resolver); err != nil {
			return nil, err
		}
		pol, err := signature.NewPolicyFromBytes(raw)
		if err != nil {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "image security policy: %v", err)
		}
		p.policy, p.policyRaw = pol, raw
	} else if o.RequirePolicy && !o.Config.AcceptDigestPinnedWithoutPolicy {
		return nil, errdefs.ErrFailedPrecondition.WithMessage(errNoPolicy)
	}

	if dir := o.Config.DecryptionKeysDir; dir != "" {
		dc, err := loadKeys(dir)
		if err != nil {
			return nil, err
		}
		p.decrypt = dc
	}
	return p, nil
}

func loadKeys(dir string) (*config.DecryptConfig, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("decryption keys: %w", err)
	}
	var keys, pws [][]byte
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("decryption key %s: %w", e.Name(), err)
		}
		keys, pws = append(keys, b), append(pws, nil)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	cc, err := config.DecryptWithPrivKeys(keys, pws)
	if err != nil {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "decryption keys in %s: %v", dir, err)
	}
	return cc.DecryptConfig, nil
}
