package kbs

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// Config is where the KBS is and how to trust it, gathered from initdata's
// aa.toml / cdh.toml or the kernel command line.
type Config struct {
	// URL is the KBS base URL (http or https), without /kbs/v0.
	URL string
	// CertPEM, when set, is the only certificate authority trusted for TLS.
	CertPEM string
	// Credentials are resources fetched into files once attested.
	Credentials []Credential
}

// Credential is a [[credentials]] entry of cdh.toml.
type Credential struct {
	ResourceURI string `toml:"resource_uri"`
	Path        string `toml:"path"`
}

// CredentialDir is the only directory credentials may be written to
// (as the confidential data hub requires).
const CredentialDir = "/run/confidential-containers/cdh/kbs"

// maxConfigSize bounds the TOML accepted from initdata.
const maxConfigSize = 1 << 20

type aaFile struct {
	TokenConfigs struct {
		KBS *struct {
			URL  string `toml:"url"`
			Cert string `toml:"cert"`
		} `toml:"kbs"`
	} `toml:"token_configs"`
}

type cdhFile struct {
	KBC *struct {
		Name    string `toml:"name"`
		URL     string `toml:"url"`
		KBSCert string `toml:"kbs_cert"`
	} `toml:"kbc"`
	Credentials []Credential `toml:"credentials"`
}

// ParseConfig builds a Config from initdata's aa.toml and cdh.toml (either
// may be empty). aa.toml's [token_configs.kbs] wins for URL and cert; cdh.toml
// supplies [kbc] as a fallback and [[credentials]].
func ParseConfig(aaTOML, cdhTOML []byte) (Config, error) {
	var c Config
	if len(aaTOML) > maxConfigSize || len(cdhTOML) > maxConfigSize {
		return c, errors.New("kbs config: aa.toml/cdh.toml larger than 1 MiB")
	}
	var aa aaFile
	if _, err := toml.Decode(string(aaTOML), &aa); err != nil {
		return c, fmt.Errorf("kbs config: aa.toml: %w", err)
	}
	var cdh cdhFile
	if _, err := toml.Decode(string(cdhTOML), &cdh); err != nil {
		return c, fmt.Errorf("kbs config: cdh.toml: %w", err)
	}
	if k := aa.TokenConfigs.KBS; k != nil {
		c.URL, c.CertPEM = k.URL, k.Cert
	}
	if k := cdh.KBC; k != nil {
		switch k.Name {
		case "cc_kbc", "":
		case "offline_fs_kbc", "offline_sev_kbc":
			return c, fmt.Errorf("kbs config: cdh.toml [kbc] name %q is not supported (only cc_kbc)", k.Name)
		default:
			return c, fmt.Errorf("kbs config: cdh.toml [kbc] name %q is unknown", k.Name)
		}
		if c.URL == "" {
			c.URL = k.URL
		}
		if c.CertPEM == "" {
			c.CertPEM = k.KBSCert
		}
	}
	c.Credentials = cdh.Credentials
	return c, c.Validate()
}

// ParseKBCParams parses the older agent.aa_kbc_params=cc_kbc::<url> form.
func ParseKBCParams(v string) (Config, error) {
	name, u, ok := strings.Cut(v, "::")
	if !ok || strings.Contains(u, "::") {
		return Config{}, fmt.Errorf("kbs config: aa_kbc_params %q: want <kbc>::<url>", v)
	}
	if name != "cc_kbc" {
		return Config{}, fmt.Errorf("kbs config: aa_kbc_params kbc %q is not supported (only cc_kbc)", name)
	}
	c := Config{URL: u}
	return c, c.Validate()
}

// Validate checks the URL, the certificate and the credential entries.
func (c Config) Validate() error {
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil {
			return fmt.Errorf("kbs config: url: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("kbs config: url %q: want http(s)://host[:port][/prefix]", c.URL)
		}
	}
	if c.CertPEM != "" {
		if _, err := certPool(c.CertPEM); err != nil {
			return err
		}
	}
	for i, cr := range c.Credentials {
		if _, err := ParseResourceURI(cr.ResourceURI); err != nil {
			return fmt.Errorf("kbs config: credentials[%d]: %w", i, err)
		}
		p := filepath.Clean(cr.Path)
		if !filepath.IsAbs(cr.Path) || p != cr.Path || !strings.HasPrefix(p, CredentialDir+"/") {
			return fmt.Errorf("kbs config: credentials[%d]: path %q must be a clean path below %s", i, cr.Path, CredentialDir)
		}
	}
	return nil
}

func certPool(pemText string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := []byte(pemText)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("kbs config: kbs_cert: %w", err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("kbs config: kbs_cert holds no PEM certificate")
	}
	return pool, nil
}
