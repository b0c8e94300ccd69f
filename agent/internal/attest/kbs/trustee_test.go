package kbs_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/kbs"
)

// Trustee answers a resource it does not hold with 401 PluginInternalError
// (trustee kbs/src/error.rs:124-130; resource/kv_storage.rs:22-24), the same
// status as an expired session. Re-attesting cannot help, so the client
// must neither loop nor call it a permission problem: NOT_FOUND, naming the
// resource, after one request.
func TestTrusteeMissingResourceIsNotFound(t *testing.T) {
	s := newKBS(t, kbstest.Options{})
	c := newClient(t, kbs.Options{Config: kbs.Config{URL: s.URL}, Attester: sampleAttester(t)})
	_, err := c.Resolve(context.Background(), "kbs:///default/secret/missing")
	if !errdefs.IsNotFound(err) || errdefs.IsPermissionDenied(err) {
		t.Fatalf("missing resource: %v, want NOT_FOUND only", err)
	}
	for _, want := range []string{"kbs:///default/secret/missing", "not found", "PluginInternalError"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if a, r := s.Count("attest"), s.Count("resource"); a != 1 || r != 1 {
		t.Fatalf("missing resource: %d attestations, %d requests; want 1 and 1", a, r)
	}
}

// Trustee's own default resource policy refuses the sample TEE
// (kbs/sample_policies/default.rego) with 401 PolicyDeny: final, no
// re-attestation, PERMISSION_DENIED naming the resource and the policy.
func TestTrusteePolicyDenyIsPermissionDenied(t *testing.T) {
	s := newKBS(t, kbstest.Options{Policy: kbstest.TrusteeDefaultPolicy})
	c := newClient(t, kbs.Options{Config: kbs.Config{URL: s.URL}, Attester: sampleAttester(t)})
	_, err := c.Resolve(context.Background(), "kbs:///default/secret/a")
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "kbs:///default/secret/a") || !strings.Contains(err.Error(), "policy") {
		t.Fatalf("policy deny: %v, want PERMISSION_DENIED naming the resource and the policy", err)
	}
	if a, r := s.Count("attest"), s.Count("resource"); a != 1 || r != 1 {
		t.Fatalf("policy deny: %d attestations, %d requests; want 1 and 1", a, r)
	}
}

// A KBS that never accepts our token (its verifier does not trust the
// attestation service) answers every resource request 401
// TokenVerifierError. The client re-attests a bounded number of times (3
// requests in all, as guest-components' KBS_GET_RESOURCE_MAX_ATTEMPT) and
// then fails with PERMISSION_DENIED naming the resource.
func TestTrusteeRejectedTokenReattestsBounded(t *testing.T) {
	s := newKBS(t, kbstest.Options{UntrustedTokens: true})
	c := newClient(t, kbs.Options{Config: kbs.Config{URL: s.URL}, Attester: sampleAttester(t)})
	_, err := c.Resolve(context.Background(), "kbs:///default/secret/a")
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "kbs:///default/secret/a") || !strings.Contains(err.Error(), "TokenVerifierError") {
		t.Fatalf("rejected token: %v", err)
	}
	if a, r := s.Count("attest"), s.Count("resource"); a != 3 || r != 3 {
		t.Fatalf("rejected token: %d attestations, %d requests; want 3 and 3", a, r)
	}
}

// A lost session (Trustee restarted, or its 5-minute session ended before
// our token's exp) is a 401 TokenNotFound: attest again and succeed.
func TestTrusteeLostSessionReattests(t *testing.T) {
	s := newKBS(t, kbstest.Options{})
	c := newClient(t, kbs.Options{Config: kbs.Config{URL: s.URL}, Attester: sampleAttester(t)})
	ctx := context.Background()
	if _, err := c.Resolve(ctx, "kbs:///default/secret/a"); err != nil {
		t.Fatal(err)
	}
	s.ExpireSessions()
	if got, err := c.Resolve(ctx, "kbs:///default/secret/a"); err != nil || string(got) != "hello" {
		t.Fatalf("after session loss: %q %v", got, err)
	}
	if a := s.Count("attest"); a != 2 {
		t.Fatalf("%d attestations, want 2", a)
	}
}

// The token is Trustee's EAR token: its exp is what the client caches, and
// the TEE key sits where Trustee's verifier looks for it
// (kbs/src/token/mod.rs:18-19).
func TestTrusteeEARToken(t *testing.T) {
	s := newKBS(t, kbstest.Options{})
	c := newClient(t, kbs.Options{Config: kbs.Config{URL: s.URL}, Attester: sampleAttester(t)})
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok.Raw, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	var v any = claims
	for _, k := range strings.Split(strings.TrimPrefix(kbstest.TeePubkeyPointer, "/"), "/") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	if !reflect.DeepEqual(v, c.PublicJWK()) {
		t.Fatalf("token's tee-pubkey %v, want %v", v, c.PublicJWK())
	}
	if exp, _ := claims["exp"].(float64); int64(exp) != tok.Expiry.Unix() || claims["eat_profile"] == nil {
		t.Fatalf("claims %v, cached expiry %v", claims, tok.Expiry)
	}
}
