package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cocoon-tee/cocoon/agent/internal/image/imgconfig"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

// memResources serves kbs:/// resources from memory, where the agent asks
// the attestation side's KBS client.
type memResources map[string][]byte

func (m memResources) Resolve(_ context.Context, uri string) ([]byte, error) {
	if b, ok := m[uri]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("%s: %w", uri, errdefs.ErrNotFound)
}

// Without an image security policy a confidential agent refuses every pull
// unless initdata's cdh.toml accepts digest-pinned references, and then
// only those. Outside confidential mode no policy means accept, as in
// image-rs. A policy, when there is one, decides in every mode.
func TestPullWithoutPolicy(t *testing.T) {
	f := newFixture(t)
	tagged := f.reg.Push(t, f.build("bb"), "nopolicy/bb:1", nil)
	pinned := strings.TrimSuffix(tagged, ":1") + "@" + manifestDigest(t, f.reg.Addr, "nopolicy/bb", "1")
	reject := f.write("reject.json", `{"default": [{"type": "reject"}]}`)

	type want int
	const (
		ok want = iota
		noPolicy
		rejected
	)
	for _, c := range []struct {
		name         string
		confidential bool
		acceptPinned bool
		policy       string
		ref          string
		want         want
	}{
		{name: "not confidential, tag", ref: tagged, want: ok},
		{name: "not confidential, digest", ref: pinned, want: ok},
		{name: "confidential, tag", confidential: true, ref: tagged, want: noPolicy},
		{name: "confidential, digest, not accepted", confidential: true, ref: pinned, want: noPolicy},
		{name: "confidential, digest accepted", confidential: true, acceptPinned: true, ref: pinned, want: ok},
		{name: "confidential, tag, digests accepted", confidential: true, acceptPinned: true, ref: tagged, want: rejected},
		{name: "confidential, policy rejects the digest", confidential: true, acceptPinned: true, policy: reject, ref: pinned, want: rejected},
		{name: "not confidential, policy rejects", policy: reject, ref: tagged, want: rejected},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.conf.ImageSecurityPolicyURI = c.policy
			f.conf.AcceptDigestPinnedWithoutPolicy = c.acceptPinned
			d := f.driver(c.confidential)
			mp := filepath.Join(d.kataRunDir, "c", "rootfs")
			m, err := d.Mount(context.Background(), storage.Request{Owner: "c", Storage: &storage.Storage{
				Driver: DriverName, Source: c.ref, MountPoint: mp,
				DriverOptions: []string{`image_guest_pull={"metadata":{}}`},
			}})
			if err == nil {
				defer m.Cleanup(context.Background())
			}
			switch c.want {
			case ok:
				if err != nil {
					t.Fatal(err)
				}
			case noPolicy:
				// The text names the pull as image-rs's does (kata
				// tests/integration/kubernetes/k8s-guest-pull-image.bats:102
				// greps "Failed to pull image") and says what to set.
				if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "Failed to pull image "+c.ref) || !strings.Contains(err.Error(), "image_security_policy_uri") {
					t.Fatalf("got %v, want FAILED_PRECONDITION naming image_security_policy_uri", err)
				}
			case rejected:
				// kata k8s-guest-pull-image-signature.bats:115 greps
				// "Image policy rejected: Denied by policy" (image-rs
				// src/image.rs:80, src/signature/mod.rs:36).
				if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "Failed to pull image") || !strings.Contains(err.Error(), "Image policy rejected: Denied by policy") {
					t.Fatalf("got %v, want PERMISSION_DENIED with image-rs's rejection text", err)
				}
			}
		})
	}
}

// sigstoreSigned with keyPath kbs:///... (what CoCo's tests configure:
// kata tests/integration/kubernetes/k8s-guest-pull-image-signature.bats:49
// "keyPath": "kbs:///default/cosign-public-key/test") resolves the key
// through the resolver schemes, and the signature is found as a registry
// attachment (the sha256-<digest>.sig tag cosign writes, image-rs
// src/signature/policy/cosign/README.md:194) without any registries.d
// document, as image-rs does.
func TestSigstoreKeyFromKBSWithoutRegistriesD(t *testing.T) {
	f := newFixture(t)
	regsD := filepath.Join(f.dir, "push-registries.d")
	if err := os.MkdirAll(regsD, 0o700); err != nil {
		t.Fatal(err)
	}
	// Only the signing side needs a registries.d, to write attachments.
	if err := os.WriteFile(filepath.Join(regsD, "push.yaml"), []byte("default-docker:\n  use-sigstore-attachments: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := testregistry.NewSigstoreKey(t)
	other := testregistry.NewSigstoreKey(t)
	src := f.build("bb")
	signed := f.reg.PushSigstoreSigned(t, src, "test-container-image-rs:cosign-signed", regsD, key)
	wrongKey := f.reg.PushSigstoreSigned(t, src, "test-container-image-rs:cosign-signed-key2", regsD, other)
	unsigned := f.reg.Push(t, src, "test-container-image-rs:unsigned", nil)
	pub, err := os.ReadFile(key.Public)
	if err != nil {
		t.Fatal(err)
	}
	// The policy of k8s-guest-pull-image-signature.bats:38-60, with our
	// registry in place of ghcr.io.
	policy := fmt.Sprintf(`{
	  "default": [{"type": "reject"}],
	  "transports": {"docker": {"%s/test-container-image-rs": [{"type": "sigstoreSigned", "keyPath": "kbs:///default/cosign-public-key/test"}]}}
	}`, f.reg.Addr)
	kbs := memResources{"kbs:///default/security-policy/test": []byte(policy), "kbs:///default/cosign-public-key/test": pub}
	f.conf.ImageSecurityPolicyURI = "kbs:///default/security-policy/test"
	f.conf.SigstoreConfigURI = ""
	p := f.puller(func(o *Options) {
		o.Resolver = imgconfig.Schemes{"file": imgconfig.FileResolver{}, "kbs": kbs}
	})
	im, err := p.Pull(context.Background(), signed)
	if err != nil {
		t.Fatalf("signed image with a kbs:/// key refused: %v", err)
	}
	im.Release()
	for name, ref := range map[string]string{"wrong key": wrongKey, "unsigned": unsigned} {
		if _, err := p.Pull(context.Background(), ref); !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "Image policy rejected: Denied by policy") {
			t.Errorf("%s: %v", name, err)
		}
	}

	// A key the KBS does not release refuses the configuration.
	delete(kbs, "kbs:///default/cosign-public-key/test")
	_, err = New(context.Background(), Options{Config: f.conf, Store: f.store, Resolver: imgconfig.Schemes{"file": imgconfig.FileResolver{}, "kbs": kbs}})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "kbs:///default/cosign-public-key/test") {
		t.Fatalf("missing key: %v", err)
	}
}

// The kernel command line configures the pull when cdh.toml has no
// [image] table (outside confidential mode): policy file only with
// agent.enable_signature_verification=true, credentials from
// agent.image_registry_auth.
func TestKernelImageConfig(t *testing.T) {
	f := newFixture(t, testregistry.WithAuth("alice", "s3cret"))
	ref := f.reg.Push(t, f.build("bb"), "private/bb:1", nil)
	auth := f.write("auth.json", fmt.Sprintf(`{"auths":{%q:{"auth":"YWxpY2U6czNjcmV0"}}}`, f.reg.Addr))
	reject := f.write("reject.json", `{"default": [{"type": "reject"}]}`)
	f.puller() // writes registries.conf, opens the store
	registries := f.conf.RegistryConfigurationURI
	cdh := "[kbc]\nname = \"cc_kbc\"\n"
	for _, c := range []struct {
		name   string
		cdh    string
		k      imgconfig.KernelParams
		wantOK bool
		check  func(error) bool
	}{
		{name: "credentials from the kernel", cdh: cdh, k: imgconfig.KernelParams{RegistryAuthURI: strings.TrimPrefix(auth, "file://")}, wantOK: true},
		{name: "policy file without verification is ignored", cdh: cdh, k: imgconfig.KernelParams{RegistryAuthURI: auth, PolicyURI: reject}, wantOK: true},
		{name: "policy file with verification applies", cdh: cdh, k: imgconfig.KernelParams{RegistryAuthURI: auth, PolicyURI: reject, EnableSignatureVerification: true}, check: errdefs.IsPermissionDenied},
		// kata k8s-guest-pull-image-authenticated.bats:119 greps "Not authorized".
		{name: "no credentials", cdh: cdh, check: func(err error) bool {
			return errdefs.IsUnauthorized(err) && strings.Contains(err.Error(), "Not authorized")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf, err := imgconfig.ParseWithKernel([]byte(c.cdh), c.k)
			if err != nil {
				t.Fatal(err)
			}
			conf.RegistryConfigurationURI = registries
			p, err := New(context.Background(), Options{Config: conf, Store: f.store})
			if err != nil {
				t.Fatal(err)
			}
			im, err := p.Pull(context.Background(), ref)
			if c.wantOK {
				if err != nil {
					t.Fatal(err)
				}
				im.Release()
				return
			}
			if !c.check(err) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// manifestDigest is the digest of repo:tag's OCI manifest as served.
func manifestDigest(t *testing.T, addr, repo, tag string) string {
	t.Helper()
	return digest.FromBytes(httpGet(t, fmt.Sprintf("http://%s/v2/%s/manifests/%s", addr, repo, tag), ocispec.MediaTypeImageManifest)).String()
}

// driver is the image_guest_pull driver the agent builds, over a fresh
// run directory, with the fixture's configuration: the puller is built on
// the first pull, so configuration errors surface through Mount.
func (f *fixture) driver(confidential bool) *Driver {
	f.t.Helper()
	f.puller() // registries.conf and the store
	run, err := os.MkdirTemp(f.dir, "run-")
	if err != nil {
		f.t.Fatal(err)
	}
	conf := f.conf
	return NewLazyDriver(f.store.Root(), func(ctx context.Context) (*Puller, error) {
		return New(ctx, Options{Config: conf, Store: f.store, RequirePolicy: confidential})
	}, run, "")
}

// The agent's wiring: NewAgentDriver takes the kernel keys when initdata's
// cdh.toml has no [image] table, and not when it has one. The kernel's
// policy file is missing, so whether the pull reads it shows which
// configuration was used.
func TestAgentDriverKernelFallback(t *testing.T) {
	f := newFixture(t)
	ref := f.reg.Push(t, f.build("bb"), "wired/bb:1", nil)
	f.puller()
	missing := filepath.Join(f.dir, "no-such-policy.json")
	registries := fmt.Sprintf("[image]\nregistry_configuration_uri = %q\n", f.conf.RegistryConfigurationURI)
	for _, c := range []struct {
		name, cdh string
		verify    bool
		usesFile  bool
	}{
		{name: "no [image], verification on: the kernel's policy file is used", verify: true, usesFile: true},
		{name: "no [image], verification off: the policy file is not read", verify: false},
		{name: "[image] present: the kernel's keys do not apply", cdh: registries, verify: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			run := t.TempDir()
			d, err := NewAgentDriver(AgentDeps{
				CDHConfig: []byte(c.cdh), KataRunDir: run, StateDir: t.TempDir(),
				Kernel: imgconfig.KernelParams{PolicyURI: missing, EnableSignatureVerification: c.verify},
			})
			if err != nil {
				t.Fatal(err)
			}
			m, err := d.Mount(context.Background(), storage.Request{Owner: "c", Storage: &storage.Storage{
				Driver: DriverName, Source: ref, MountPoint: filepath.Join(run, "c", "rootfs"),
				DriverOptions: []string{`image_guest_pull={"metadata":{}}`},
			}})
			if err == nil {
				defer m.Cleanup(context.Background())
			}
			if used := errdefs.IsNotFound(err) && strings.Contains(err.Error(), missing); used != c.usesFile {
				t.Fatalf("policy file used = %v, want %v: %v", used, c.usesFile, err)
			}
			if err != nil && !strings.Contains(err.Error(), textPullFailed+" "+ref) {
				t.Errorf("error does not start as image-rs's: %v", err)
			}
		})
	}
}
