package image

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

// signingSetup writes a registries.d document that stores simple-signing
// signatures in a file lookaside and sigstore signatures as registry
// attachments; skopeo signs with it and the puller reads it.
func signingSetup(f *fixture) (regsD string) {
	f.t.Helper()
	sigs := filepath.Join(f.dir, "sigs")
	regsD = filepath.Join(f.dir, "registries.d")
	if err := os.MkdirAll(regsD, 0o700); err != nil {
		f.t.Fatal(err)
	}
	doc := fmt.Sprintf("docker:\n  %s:\n    lookaside: file://%s\n    lookaside-staging: file://%s\n    use-sigstore-attachments: true\n", f.reg.Addr, sigs, sigs)
	if err := os.WriteFile(filepath.Join(regsD, "test.yaml"), []byte(doc), 0o600); err != nil {
		f.t.Fatal(err)
	}
	f.conf.SigstoreConfigURI = "file://" + filepath.Join(regsD, "test.yaml")
	return regsD
}

func TestSignedBy(t *testing.T) {
	f := newFixture(t)
	regsD := signingSetup(f)
	gpg := testregistry.NewGPG(t)
	src := f.build("bb")
	signed := f.reg.Push(t, src, "signed/bb:1", gpg.Env(), "--registries.d", regsD, "--sign-by", gpg.Fingerprint)
	unsigned := f.reg.Push(t, src, "signed/other:1", nil)
	elsewhere := f.reg.Push(t, src, "elsewhere:1", nil)
	tampered := f.reg.Push(t, src, "signed/tampered:1", gpg.Env(), "--registries.d", regsD, "--sign-by", gpg.Fingerprint)
	corruptSignatures(t, filepath.Join(f.dir, "sigs"), "signed/tampered")

	f.conf.ImageSecurityPolicyURI = f.write("policy.json", fmt.Sprintf(`{
	  "default": [{"type": "reject"}],
	  "transports": {"docker": {"%s/signed": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": %q}]}}
	}`, f.reg.Addr, gpg.PubKeyPath))
	var events []PullEvent
	p := f.puller(func(o *Options) { o.OnPull = func(_ context.Context, ev PullEvent) { events = append(events, ev) } })

	im, err := p.Pull(context.Background(), signed)
	if err != nil {
		t.Fatalf("signed image refused: %v", err)
	}
	defer im.Release()
	if len(events) != 1 || events[0].VerifiedBy != "signedBy" || events[0].ManifestDigest == "" {
		t.Errorf("events %+v", events)
	}
	for name, ref := range map[string]string{"unsigned": unsigned, "tampered": tampered, "default reject": elsewhere} {
		if _, err := p.Pull(context.Background(), ref); !errdefs.IsPermissionDenied(err) {
			t.Errorf("%s image: got %v, want PERMISSION_DENIED", name, err)
		}
	}
	if len(events) != 1 {
		t.Errorf("refused pulls were recorded: %+v", events)
	}
}

// corruptSignatures flips a byte in every lookaside signature of repo.
func corruptSignatures(t *testing.T, sigs, repo string) {
	t.Helper()
	n := 0
	_ = filepath.Walk(sigs, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !strings.Contains(p, repo+"@") {
			return nil
		}
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 0x55
		n++
		return os.WriteFile(p, b, 0o644)
	})
	if n == 0 {
		t.Fatalf("no signature of %s found in %s", repo, sigs)
	}
}

func TestSigstoreSigned(t *testing.T) {
	f := newFixture(t)
	regsD := signingSetup(f)
	key := testregistry.NewSigstoreKey(t)
	src := f.build("bb")
	signed := f.reg.PushSigstoreSigned(t, src, "cosign/bb:1", regsD, key)
	unsigned := f.reg.Push(t, src, "cosign/plain:1", nil)
	f.conf.ImageSecurityPolicyURI = f.write("policy.json", fmt.Sprintf(`{
	  "default": [{"type": "insecureAcceptAnything"}],
	  "transports": {"docker": {"%s/cosign": [{"type": "sigstoreSigned", "keyPath": %q, "signedIdentity": {"type": "matchRepository"}}]}}
	}`, f.reg.Addr, key.Public))
	p := f.puller()
	im, err := p.Pull(context.Background(), signed)
	if err != nil {
		t.Fatalf("sigstore-signed image refused: %v", err)
	}
	im.Release()
	if _, err := p.Pull(context.Background(), unsigned); !errdefs.IsPermissionDenied(err) {
		t.Errorf("unsigned: got %v", err)
	}
}

func TestEncryptedLayers(t *testing.T) {
	f := newFixture(t)
	_, pub := testregistry.RSAKeyPair(t, filepath.Join(f.dir, "keys"))
	wrongDir := filepath.Join(f.dir, "wrong")
	testregistry.RSAKeyPair(t, wrongDir)
	src := f.build("bb", testregistry.Files(map[string]string{"secret.txt": "classified"}))
	ref := f.reg.Push(t, src, "enc/bb:1", nil, "--encryption-key", "jwe:"+pub)

	f.conf.DecryptionKeysDir = wrongDir
	if _, err := f.puller().Pull(context.Background(), ref); err == nil || !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "decrypt") {
		t.Fatalf("wrong key: %v", err)
	}
	if layers, tmp := f.storedLayers(); len(layers)+len(tmp) != 0 {
		t.Fatalf("failed pull left %v %v", layers, tmp)
	}
	f.conf.DecryptionKeysDir = ""
	if _, err := f.puller().Pull(context.Background(), ref); err == nil || !strings.Contains(err.Error(), "decryption_keys_dir") {
		t.Fatalf("no key: %v", err)
	}

	f.conf.DecryptionKeysDir = filepath.Join(f.dir, "keys")
	im, err := f.puller().Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Release()
	top := im.Layers[len(im.Layers)-1]
	if b, err := os.ReadFile(filepath.Join(top, "secret.txt")); err != nil || string(b) != "classified" {
		t.Errorf("decrypted layer: %q %v", b, err)
	}
}

func TestAuthRequired(t *testing.T) {
	f := newFixture(t, testregistry.WithAuth("alice", "s3cret"))
	ref := f.reg.Push(t, f.build("bb"), "private/bb:1", nil)
	if _, err := f.puller().Pull(context.Background(), ref); !errdefs.IsUnauthorized(err) {
		t.Fatalf("without credentials: %v", err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	f.conf.AuthenticatedRegistryCredentialsURI = f.write("auth.json", fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, f.reg.Addr, auth))
	im, err := f.puller().Pull(context.Background(), ref)
	if err != nil {
		t.Fatalf("with credentials: %v", err)
	}
	im.Release()
}
