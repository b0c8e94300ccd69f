package testregistry

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.podman.io/image/v5/signature/sigstore"
)

// GPG is a throw-away GnuPG home with one signing key.
type GPG struct {
	Home        string
	Fingerprint string
	// PubKeyPath is the armored public key, for policy.json keyPath.
	PubKeyPath string
}

// Env is the environment skopeo needs to sign with this key.
func (g *GPG) Env() []string { return []string{"GNUPGHOME=" + g.Home} }

// NewGPG generates an ed25519 signing key without passphrase.
func NewGPG(t testing.TB) *GPG {
	t.Helper()
	// gpg-agent's socket path must stay short: use a directory under /tmp.
	home, err := os.MkdirTemp("/tmp", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"GNUPGHOME=" + home}
	t.Cleanup(func() {
		_ = runQuiet(env, "gpgconf", "--kill", "all")
		_ = os.RemoveAll(home)
	})
	Run(t, env, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", "cocoon test <test@cocoon.invalid>", "ed25519", "sign", "never")
	var fpr string
	for _, line := range strings.Split(Run(t, env, "gpg", "--batch", "--with-colons", "--list-secret-keys"), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if fpr == "" {
		t.Fatal("gpg: no fingerprint")
	}
	pub := filepath.Join(home, "pub.gpg")
	Run(t, env, "gpg", "--batch", "--yes", "--output", pub, "--export", fpr)
	return &GPG{Home: home, Fingerprint: fpr, PubKeyPath: pub}
}

// SigstoreKey is a cosign-format key pair made by skopeo.
type SigstoreKey struct {
	Private, Public, PassphraseFile string
}

// NewSigstoreKey generates a sigstore (cosign-format, ECDSA P-256) key
// pair with containers/image, passphrase-protected as skopeo expects.
func NewSigstoreKey(t testing.TB) *SigstoreKey {
	t.Helper()
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("cocoon-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kp, err := sigstore.GenerateKeyPair([]byte("cocoon-test"))
	if err != nil {
		t.Fatal(err)
	}
	k := &SigstoreKey{Private: filepath.Join(dir, "key.private"), Public: filepath.Join(dir, "key.pub"), PassphraseFile: pass}
	if err := os.WriteFile(k.Private, kp.PrivateKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.Public, kp.PublicKey, 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

// RSAKeyPair writes an RSA key pair for JWE layer encryption and returns
// the paths of the PEM private and public keys.
func RSAKeyPair(t testing.TB, dir string) (priv, pub string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	priv, pub = filepath.Join(dir, "private.pem"), filepath.Join(dir, "public.pem")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}
