// Package imgconfig owns the image-pull configuration: the [image] table of a
// cdh.toml-compatible file and the resolution of the URIs it names
// (file:// here; kbs:// is plugged in by the attestation side through
// Resolver).
package imgconfig

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// DefaultMaxConcurrentLayerDownloads matches the CoCo image client's default.
const DefaultMaxConcurrentLayerDownloads = 3

// maxConfigSize bounds the cdh.toml we are willing to parse; the file comes
// from initdata, which the host supplies.
const maxConfigSize = 1 << 20

// maxResourceSize bounds anything fetched through a Resolver (policy.json,
// auth.json, registries.conf, certificates).
const maxResourceSize = 4 << 20

// Config is the [image] table. Field names follow the CoCo keys so an
// existing cdh.toml works unchanged.
type Config struct {
	// ImageSecurityPolicyURI names a containers policy.json.
	ImageSecurityPolicyURI string `toml:"image_security_policy_uri"`
	// SigstoreConfigURI names a registries.d document (lookaside and
	// sigstore-attachment settings).
	SigstoreConfigURI string `toml:"sigstore_config_uri"`
	// AuthenticatedRegistryCredentialsURI names an auth.json.
	AuthenticatedRegistryCredentialsURI string `toml:"authenticated_registry_credentials_uri"`
	// RegistryConfigurationURI names a registries.conf (v2).
	RegistryConfigurationURI string `toml:"registry_configuration_uri"`
	// WorkDir is where layers are stored; empty means the agent's default.
	WorkDir string `toml:"work_dir"`
	// MaxConcurrentLayerDownloadsPerImage bounds parallel blob fetches.
	MaxConcurrentLayerDownloadsPerImage int `toml:"max_concurrent_layer_downloads_per_image"`
	// ExtraRootCertificates are PEM certificates trusted for registries in
	// addition to the system pool.
	ExtraRootCertificates []string `toml:"extra_root_certificates"`
	// ImagePullProxy is the proxy used for registry traffic.
	ImagePullProxy Proxy `toml:"image_pull_proxy"`

	// DecryptionKeysDir (cocoon) is a directory of private keys (PEM/DER,
	// JWK) used to unwrap JWE-wrapped layer keys.
	DecryptionKeysDir string `toml:"decryption_keys_dir"`
	// AcceptDigestPinnedWithoutPolicy (cocoon) lets a confidential agent
	// without image_security_policy_uri pull references pinned by digest
	// (name@sha256:...), and only those: the manifest must match the
	// digest, so the pod's policy (which pins it) decides what runs.
	// Without it, and without a policy, a confidential agent refuses
	// every pull. Meaningless when a policy is set: the policy decides.
	AcceptDigestPinnedWithoutPolicy bool `toml:"accept_digest_pinned_without_policy"`

	// FromKernel is set when cdh.toml had no [image] table and the
	// configuration came from the agent's kernel command-line keys.
	FromKernel bool `toml:"-"`
}

// Proxy is the [image.image_pull_proxy] table.
type Proxy struct {
	HTTPSProxy string `toml:"https_proxy"`
	HTTPProxy  string `toml:"http_proxy"`
	NoProxy    string `toml:"no_proxy"`
}

type file struct {
	Image *Config `toml:"image"`
}

// Parse reads a cdh.toml document and returns its [image] table with
// defaults applied. Other tables (kbc, credentials, ...) are ignored: they
// belong to other parts of the agent.
func Parse(data []byte) (Config, error) {
	if len(data) > maxConfigSize {
		return Config{}, errs.Newf(errdefs.ErrInvalidArgument, "image config is %d bytes, limit %d", len(data), maxConfigSize)
	}
	var f file
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f); err != nil {
		return Config{}, fmt.Errorf("image config: %w", errdefs.ErrInvalidArgument.WithMessage(err.Error()))
	}
	c := Config{}
	if f.Image != nil {
		c = *f.Image
	}
	if err := c.normalise(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) normalise() error {
	if c.MaxConcurrentLayerDownloadsPerImage == 0 {
		c.MaxConcurrentLayerDownloadsPerImage = DefaultMaxConcurrentLayerDownloads
	}
	if n := c.MaxConcurrentLayerDownloadsPerImage; n < 0 || n > 64 {
		return errs.Newf(errdefs.ErrInvalidArgument, "max_concurrent_layer_downloads_per_image = %d, want 1..64", n)
	}
	for key, uri := range map[string]string{
		"image_security_policy_uri":              c.ImageSecurityPolicyURI,
		"sigstore_config_uri":                    c.SigstoreConfigURI,
		"authenticated_registry_credentials_uri": c.AuthenticatedRegistryCredentialsURI,
		"registry_configuration_uri":             c.RegistryConfigurationURI,
	} {
		if uri == "" {
			continue
		}
		if _, err := Scheme(uri); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	if c.WorkDir != "" && !filepath.IsAbs(c.WorkDir) {
		return errs.Newf(errdefs.ErrInvalidArgument, "work_dir %q is not absolute", c.WorkDir)
	}
	if c.DecryptionKeysDir != "" && !filepath.IsAbs(c.DecryptionKeysDir) {
		return errs.Newf(errdefs.ErrInvalidArgument, "decryption_keys_dir %q is not absolute", c.DecryptionKeysDir)
	}
	return nil
}

// Scheme returns the scheme of a resource URI, accepting only file and kbs.
func Scheme(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", errs.Newf(errdefs.ErrInvalidArgument, "resource uri %q: %v", uri, err)
	}
	switch u.Scheme {
	case "file", "kbs":
		return u.Scheme, nil
	}
	return "", errs.Newf(errdefs.ErrInvalidArgument, "resource uri %q: scheme must be file:// or kbs://", uri)
}

// Resolver fetches the bytes a resource URI names.
type Resolver interface {
	Resolve(ctx context.Context, uri string) ([]byte, error)
}

// FileResolver resolves file:///absolute/path URIs from the guest's file
// system.
type FileResolver struct{}

// Resolve reads the file, bounded to a few MiB.
func (FileResolver) Resolve(_ context.Context, uri string) ([]byte, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "file" {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "not a file:// uri: %q", uri)
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "file uri %q names a host", uri)
	}
	p := filepath.Clean(u.Path)
	if !filepath.IsAbs(p) {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "file uri %q is not absolute", uri)
	}
	f, err := os.Open(p)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: %w", uri, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("read %s: %w", uri, err)
	}
	defer f.Close()
	return readBounded(f, uri)
}

func readBounded(f *os.File, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxResourceSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxResourceSize {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "%s is larger than %d bytes", name, maxResourceSize)
	}
	return data, nil
}

// Schemes dispatches on the URI scheme; the agent builds one with "file"
// and, once attestation is available, "kbs".
type Schemes map[string]Resolver

// Resolve hands uri to the resolver for its scheme.
func (s Schemes) Resolve(ctx context.Context, uri string) ([]byte, error) {
	scheme, err := Scheme(uri)
	if err != nil {
		return nil, err
	}
	r, ok := s[scheme]
	if !ok {
		return nil, errs.Newf(errdefs.ErrNotImplemented, "no resolver for %s:// resources (%q)", scheme, strings.SplitN(uri, "?", 2)[0])
	}
	return r.Resolve(ctx, uri)
}
