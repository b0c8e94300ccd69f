package integration_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/sealed"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// seal makes a vault sealed secret naming the KBS resource name, signed by
// key under kid, as a secret-sealing tool would.
func seal(t *testing.T, key *ecdsa.PrivateKey, kid, name string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{
		"version": sealed.Version, "type": "vault", "provider": "kbs", "name": name,
		"provider_settings": map[string]any{}, "annotations": map[string]any{},
	})
	jws, err := sig.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	c, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return sealed.Prefix + c
}

// A container's sealed environment value reaches the workload as the
// plaintext the KBS releases after the agent attests (sample attester: no
// TEE here). Secrets that cannot be unsealed refuse the container with the
// unsealer's class and leave nothing behind.
func TestSealedSecretInContainerEnv(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	kbs, err := kbstest.New(kbstest.Options{Resources: map[string][]byte{
		"default/sealing/pub": pub,
		"default/secret/db":   []byte("s3cr3t value"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kbs.Close)

	cfg := baseConfig(t)
	cfg.AttestSample = true
	cfg.AAKBCParams = "cc_kbc::" + kbs.URL
	a := start(t, cfg, daemon.Options{})
	ctx := ctxT(t)

	rootfs := func(cid string) string { return testenv.KataRootfs(t, cfg.KataRunDir, cid) }
	const kid = "kbs:///default/sealing/pub"

	cid := "att-sealed-ok"
	s := spec(rootfs(cid), []string{"SECRET=" + seal(t, key, kid, "kbs:///default/secret/db"), "PLAIN=x"}, "sh", "-c", `echo -n "$SECRET|$PLAIN"`)
	if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: cid, ExecId: cid, OCI: s}); err != nil {
		t.Fatal(err)
	}
	if out, st := a.run(t, cid); out != "s3cr3t value|x" || st != 0 {
		t.Fatalf("container printed %q (status %d), want the unsealed secret", out, st)
	}
	if kbs.Count("attest") == 0 {
		t.Fatal("the secret was released without attestation")
	}

	for _, c := range []struct {
		name, value string
		code        codes.Code
	}{
		{"wrong signer", seal(t, other, kid, "kbs:///default/secret/db"), codes.PermissionDenied},
		{"secret not in KBS", seal(t, key, kid, "kbs:///default/secret/none"), codes.NotFound},
		{"not a JWS", "sealed.not-a-jws", codes.InvalidArgument},
	} {
		t.Run(c.name, func(t *testing.T) {
			cid := "att-sealed-bad"
			s := spec(rootfs(cid), []string{"SECRET=" + c.value}, "sh", "-c", `echo -n "$SECRET"`)
			_, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: cid, ExecId: cid, OCI: s})
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), "SECRET") {
				t.Fatalf("CreateContainer: %v, want %v naming the variable", err, c.code)
			}
			if strings.Contains(err.Error(), c.value) {
				t.Errorf("error quotes the sealed value: %v", err)
			}
			a.gone(t, cid)
		})
	}
}

// Without a KBS the agent cannot unseal: FAILED_PRECONDITION, no container.
func TestSealedSecretWithoutKBS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, sample := range map[string]bool{"no TEE": false, "sample attester, no KBS": true} {
		t.Run(name, func(t *testing.T) {
			cfg := baseConfig(t)
			cfg.AttestSample = sample
			a := start(t, cfg, daemon.Options{})
			cid := "att-sealed-nokbs"
			r := testenv.KataRootfs(t, cfg.KataRunDir, cid)
			s := spec(r, []string{"SECRET=" + seal(t, key, "kbs:///default/sealing/pub", "kbs:///default/secret/db")}, "true")
			_, err := a.CreateContainer(ctxT(t), &agentpb.CreateContainerRequest{ContainerId: cid, ExecId: cid, OCI: s})
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("CreateContainer: %v, want FAILED_PRECONDITION", err)
			}
			a.gone(t, cid)
		})
	}
}
