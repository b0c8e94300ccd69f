package imgconfig

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// KernelParams are the image keys guest-components reads from the kernel
// command line (image-rs src/config.rs KernelParameterConfigs). The agent's
// configuration supplies them; in confidential mode it has already kept
// only what the image file set, so they are trusted here.
type KernelParams struct {
	// PolicyURI is agent.image_policy_file; it applies only with
	// EnableSignatureVerification, as in image-rs.
	PolicyURI                   string
	EnableSignatureVerification bool
	// RegistryAuthURI is agent.image_registry_auth.
	RegistryAuthURI string
	// The proxies are agent.https_proxy, agent.http_proxy, agent.no_proxy.
	HTTPSProxy, HTTPProxy, NoProxy string
}

// ParseWithKernel reads a cdh.toml document like Parse. When the document
// has no [image] table (or there is no document), the configuration is
// built from k instead, as the data hub does
// (hub/src/config/mod.rs: `#[serde(default = "ImageConfig::from_kernel_cmdline")]`).
// An [image] table, even an empty one, makes k irrelevant.
func ParseWithKernel(data []byte, k KernelParams) (Config, error) {
	present, err := hasImageTable(data)
	if err != nil {
		return Config{}, err
	}
	if present {
		return Parse(data)
	}
	c := Config{FromKernel: true}
	if k.EnableSignatureVerification && k.PolicyURI != "" {
		if c.ImageSecurityPolicyURI, err = kernelURI("agent.image_policy_file", k.PolicyURI); err != nil {
			return Config{}, err
		}
	}
	if k.RegistryAuthURI != "" {
		if c.AuthenticatedRegistryCredentialsURI, err = kernelURI("agent.image_registry_auth", k.RegistryAuthURI); err != nil {
			return Config{}, err
		}
	}
	c.ImagePullProxy = Proxy{HTTPSProxy: k.HTTPSProxy, HTTPProxy: k.HTTPProxy, NoProxy: k.NoProxy}
	if err := c.normalise(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// kernelURI accepts what image-rs's resource provider accepts: a URI, or a
// bare absolute path meaning file:// (image-rs src/resource/mod.rs
// get_resource).
func kernelURI(key, v string) (string, error) {
	if !strings.Contains(v, "://") {
		if !filepath.IsAbs(v) {
			return "", errs.Newf(errdefs.ErrInvalidArgument, "%s %q: want file://, kbs:/// or an absolute path", key, v)
		}
		v = "file://" + v
	}
	if _, err := Scheme(v); err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return v, nil
}

func hasImageTable(data []byte) (bool, error) {
	if len(data) > maxConfigSize {
		return false, errs.Newf(errdefs.ErrInvalidArgument, "image config is %d bytes, limit %d", len(data), maxConfigSize)
	}
	var doc map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return false, fmt.Errorf("image config: %w", errdefs.ErrInvalidArgument.WithMessage(err.Error()))
	}
	_, ok := doc["image"]
	return ok, nil
}
