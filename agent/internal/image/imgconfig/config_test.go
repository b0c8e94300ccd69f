package imgconfig

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`
socket = "unix:///run/cdh.sock"
[kbc]
name = "cc_kbc"
url = "http://kbs:8080"
[image]
image_security_policy_uri = "kbs:///default/security-policy/test"
registry_configuration_uri = "file:///etc/containers/registries.conf"
work_dir = "/run/image"
extra_root_certificates = ["-----BEGIN CERTIFICATE-----"]
[image.image_pull_proxy]
https_proxy = "http://proxy:3128"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConcurrentLayerDownloadsPerImage != 3 || c.ImageSecurityPolicyURI != "kbs:///default/security-policy/test" ||
		c.WorkDir != "/run/image" || len(c.ExtraRootCertificates) != 1 || c.ImagePullProxy.HTTPSProxy != "http://proxy:3128" {
		t.Fatalf("%+v", c)
	}
	if c, err := Parse(nil); err != nil || c.MaxConcurrentLayerDownloadsPerImage != 3 {
		t.Fatalf("empty: %+v %v", c, err)
	}
}

func TestParseErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"syntax":      "[image",
		"bad scheme":  "[image]\nimage_security_policy_uri = \"http://x/p.json\"",
		"relative":    "[image]\nwork_dir = \"run\"",
		"concurrency": "[image]\nmax_concurrent_layer_downloads_per_image = -1",
		"type":        "[image]\nwork_dir = 3",
	} {
		if _, err := Parse([]byte(doc)); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Parse(make([]byte, maxConfigSize+1)); !errdefs.IsInvalidArgument(err) {
		t.Error("oversized config accepted")
	}
}

func TestResolvers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := Schemes{"file": FileResolver{}}
	if b, err := r.Resolve(context.Background(), "file://"+p); err != nil || string(b) != "{}" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := r.Resolve(context.Background(), "file://"+p+".missing"); !errdefs.IsNotFound(err) {
		t.Errorf("missing: %v", err)
	}
	if _, err := r.Resolve(context.Background(), "kbs:///default/key/1"); !errdefs.IsNotImplemented(err) {
		t.Errorf("kbs without resolver: %v", err)
	}
	if _, err := r.Resolve(context.Background(), "file://host/etc/passwd"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("file with host: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("[image]\nmax_concurrent_layer_downloads_per_image = 5\n"))
	f.Add([]byte("[image]\nextra_root_certificates = [\"a\"]\n[image.image_pull_proxy]\nno_proxy=\"x\""))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if c.MaxConcurrentLayerDownloadsPerImage < 1 || c.MaxConcurrentLayerDownloadsPerImage > 64 {
			t.Fatalf("concurrency %d accepted", c.MaxConcurrentLayerDownloadsPerImage)
		}
	})
}
