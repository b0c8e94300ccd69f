package sealed_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/kbs"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/sealed"
)

func seal(t testing.TB, key *ecdsa.PrivateKey, kid string, secret map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(secret)
	jws, err := sig.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := jws.CompactSerialize()
	return sealed.Prefix + c
}

func vault(name string) map[string]any {
	return map[string]any{"version": "0.1.0", "type": "vault", "provider": "kbs", "name": name, "provider_settings": map[string]any{}, "annotations": map[string]any{}}
}

func setup(t *testing.T) (*sealed.Unsealer, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	s, err := kbstest.New(kbstest.Options{Resources: map[string][]byte{
		"default/sealing/pub": pub,
		"default/secret/db":   []byte("s3cr3t"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	a, _ := attest.New(attest.Options{Root: t.TempDir(), AllowSample: true})
	c, err := kbs.New(kbs.Options{Config: kbs.Config{URL: s.URL}, Attester: a, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &sealed.Unsealer{KBS: c, KeyDir: t.TempDir()}, key
}

func TestUnsealVaultKBS(t *testing.T) {
	u, key := setup(t)
	ctx := context.Background()
	v := seal(t, key, "kbs:///default/sealing/pub", vault("kbs:///default/secret/db"))
	got, err := u.Unseal(ctx, v)
	if err != nil || got != "s3cr3t" {
		t.Fatalf("Unseal = %q, %v", got, err)
	}
	env, err := u.UnsealEnv(ctx, []string{"PATH=/bin", "DB=" + v, "EMPTY="})
	if err != nil || env[1] != "DB=s3cr3t" || env[0] != "PATH=/bin" || env[2] != "EMPTY=" {
		t.Fatalf("UnsealEnv = %q, %v", env, err)
	}
}

func TestUnsealLocalKey(t *testing.T) {
	u, key := setup(t)
	pub, _ := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	if err := os.WriteFile(filepath.Join(u.KeyDir, "k1"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := u.Unseal(context.Background(), seal(t, key, "k1", vault("kbs:///default/secret/db")))
	if err != nil || got != "s3cr3t" {
		t.Fatalf("Unseal = %q, %v", got, err)
	}
	// A kid cannot leave the key directory.
	_, err = u.Unseal(context.Background(), seal(t, key, "../../../../etc/hostname", vault("kbs:///default/secret/db")))
	if !errdefs.IsNotFound(err) {
		t.Fatalf("escaping kid: %v", err)
	}
}

func TestUnsealRejects(t *testing.T) {
	u, key := setup(t)
	ctx := context.Background()
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := seal(t, other, "kbs:///default/sealing/pub", vault("kbs:///default/secret/db"))
	if _, err := u.Unseal(ctx, forged); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("forged signature: %v", err)
	}
	env, err := u.UnsealEnv(ctx, []string{"X=" + forged})
	if err == nil || env != nil || !strings.Contains(err.Error(), "variable X") || strings.Contains(err.Error(), forged) {
		t.Fatalf("UnsealEnv forged: %v", err)
	}
	env2 := map[string]any{"version": "0.1.0", "type": "envelope", "provider": "aliyun", "provider_settings": map[string]any{}}
	if _, err := u.Unseal(ctx, seal(t, key, "kbs:///default/sealing/pub", env2)); !errdefs.IsNotImplemented(err) {
		t.Fatalf("envelope: %v", err)
	}
	v2 := vault("kbs:///default/secret/db")
	v2["version"] = "9"
	if _, err := u.Unseal(ctx, seal(t, key, "kbs:///default/sealing/pub", v2)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad version: %v", err)
	}
	for _, bad := range []string{"plain", "sealed.", "sealed.a.b", "sealed.a.b.c", "sealed.e30.e30.AA"} {
		if _, err := u.Unseal(ctx, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Unseal(%q): %v", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(seal(f, key, "kbs:///a/b/c", vault("kbs:///a/b/c")))
	f.Add("sealed.e30.e30.AA")
	f.Fuzz(func(t *testing.T, s string) { _, _, _ = sealed.Parse(s) })
}
