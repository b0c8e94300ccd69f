package imgconfig

import (
	"testing"

	"github.com/containerd/errdefs"
)

// The cases follow image-rs's own table (src/config.rs tests around lines
// 340-420, guest-components 8246e5e0): the policy file applies only with
// agent.enable_signature_verification=true; credentials and proxies apply
// regardless; and the data hub uses them only when cdh.toml has no [image]
// table (hub/src/config/mod.rs:114).
func TestParseWithKernel(t *testing.T) {
	k := KernelParams{
		PolicyURI:       "file:///etc/image-policy.json",
		RegistryAuthURI: "kbs:///a/b/c",
		HTTPSProxy:      "http://1.2.3.4:1234",
		NoProxy:         "localhost",
	}
	verify := k
	verify.EnableSignatureVerification = true
	bare := verify
	bare.PolicyURI, bare.RegistryAuthURI = "/etc/image-policy.json", "/root/.docker/config.json"
	for _, c := range []struct {
		name              string
		cdh               string
		k                 KernelParams
		policy, auth      string
		proxy, fromKernel bool
	}{
		{name: "verification off: policy file ignored", k: k, auth: "kbs:///a/b/c", proxy: true, fromKernel: true},
		{name: "verification on", k: verify, policy: "file:///etc/image-policy.json", auth: "kbs:///a/b/c", proxy: true, fromKernel: true},
		{name: "bare paths are files", k: bare, policy: "file:///etc/image-policy.json", auth: "file:///root/.docker/config.json", proxy: true, fromKernel: true},
		{name: "cdh.toml without [image]", cdh: "socket = \"unix:///run/cdh.sock\"\n[kbc]\nname = \"cc_kbc\"\nurl = \"http://kbs\"\n", k: verify, policy: "file:///etc/image-policy.json", auth: "kbs:///a/b/c", proxy: true, fromKernel: true},
		{name: "[image] table wins", cdh: "[image]\nimage_security_policy_uri = \"kbs:///default/security-policy/test\"\n", k: verify, policy: "kbs:///default/security-policy/test"},
		{name: "empty [image] table still wins", cdh: "[image]\n", k: verify},
		{name: "nothing anywhere", fromKernel: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseWithKernel([]byte(c.cdh), c.k)
			if err != nil {
				t.Fatal(err)
			}
			if got.ImageSecurityPolicyURI != c.policy || got.AuthenticatedRegistryCredentialsURI != c.auth || got.FromKernel != c.fromKernel {
				t.Errorf("got %+v", got)
			}
			if hasProxy := got.ImagePullProxy.HTTPSProxy == "http://1.2.3.4:1234" && got.ImagePullProxy.NoProxy == "localhost"; hasProxy != c.proxy {
				t.Errorf("proxy %+v, want kernel's: %v", got.ImagePullProxy, c.proxy)
			}
			if got.MaxConcurrentLayerDownloadsPerImage != DefaultMaxConcurrentLayerDownloads {
				t.Errorf("defaults not applied: %+v", got)
			}
		})
	}
}

func TestParseWithKernelErrors(t *testing.T) {
	for name, k := range map[string]KernelParams{
		"relative policy":  {PolicyURI: "etc/p.json", EnableSignatureVerification: true},
		"http policy":      {PolicyURI: "http://host/p.json", EnableSignatureVerification: true},
		"relative auth":    {RegistryAuthURI: "auth.json"},
		"unsupported auth": {RegistryAuthURI: "https://host/auth.json"},
	} {
		if _, err := ParseWithKernel(nil, k); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseWithKernel([]byte("[image"), KernelParams{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("broken cdh.toml: %v", err)
	}
}

func FuzzParseWithKernel(f *testing.F) {
	f.Add([]byte("[image]\n"), "kbs:///a/b/c", true)
	f.Add([]byte("socket = 1"), "/etc/p.json", false)
	f.Fuzz(func(t *testing.T, data []byte, uri string, verify bool) {
		c, err := ParseWithKernel(data, KernelParams{PolicyURI: uri, RegistryAuthURI: uri, EnableSignatureVerification: verify})
		if err != nil {
			return
		}
		if c.FromKernel && !verify && c.ImageSecurityPolicyURI != "" {
			t.Fatalf("policy applied without verification: %+v", c)
		}
	})
}
