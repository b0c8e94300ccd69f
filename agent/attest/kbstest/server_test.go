package kbstest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/kbs"
)

// The double's wire shapes, pinned to Trustee's source (cited in server.go
// and rcar.go), so a change to the double that drifts from Trustee fails
// here and not only in some client test.
func TestTrusteeWireShapes(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	do := func(method, path string, body string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	cases := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/kbs/v0/auth", `{"version":"0.3.0","tee":"sample","extra-params":""}`, 401,
			`{"type":"https://github.com/confidential-containers/kbs/errors/AttestationError","detail":"Attestation error: RCAR handshake Auth failed: KBS Client Protocol Version Mismatch: expect =0.4.0 while the request is 0.3.0"}`},
		{"POST", "/kbs/v0/auth", `{"version":"0.4.0","tee":"nope","extra-params":""}`, 401,
			`{"type":"https://github.com/confidential-containers/kbs/errors/AttestationError","detail":"Attestation error: RCAR handshake Auth failed: deserialize Request"}`},
		{"POST", "/kbs/v0/attest", `{}`, 401,
			`{"type":"https://github.com/confidential-containers/kbs/errors/AttestationError","detail":"Attestation error: RCAR handshake Attest failed"}`},
		{"GET", "/kbs/v0/resource/default/key/1", "", 401,
			`{"type":"https://github.com/confidential-containers/kbs/errors/TokenNotFound","detail":"Attestation Token not found"}`},
		{"GET", "/kbs/v0/auth", "", 404,
			`{"type":"https://github.com/confidential-containers/kbs/errors/PluginNotFound","detail":"Plugin auth not found"}`},
		{"GET", "/kbs/v0/nebula-ca/x", "", 404,
			`{"type":"https://github.com/confidential-containers/kbs/errors/PluginNotFound","detail":"Plugin nebula-ca not found"}`},
		{"GET", "/other", "", 404, ""},
	}
	for _, c := range cases {
		resp, body := do(c.method, c.path, c.body, nil)
		if resp.StatusCode != c.code || body != c.want {
			t.Errorf("%s %s = %d %s\nwant %d %s", c.method, c.path, resp.StatusCode, body, c.code, c.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			t.Errorf("%s %s: error with Content-Type %q; Trustee sends none", c.method, c.path, ct)
		}
	}

	resp, body := do("POST", "/kbs/v0/auth", `{"version":"0.4.0","tee":"sample","extra-params":{"supported-hash-algorithms":["sha384"]}}`, nil)
	var ch map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &ch); resp.StatusCode != 200 || err != nil || !bytes.Equal(ch["extra-params"], []byte(`""`)) || len(ch["nonce"]) != 46 {
		t.Fatalf("challenge %d %s", resp.StatusCode, body)
	}
	sc := resp.Header.Values("Set-Cookie")
	if len(sc) != 1 {
		t.Fatalf("Set-Cookie %q", sc)
	}
	name, rest, _ := strings.Cut(sc[0], "=")
	id, attrs, _ := strings.Cut(rest, "; ")
	if name != "kbs-session-id" || len(id) != 32 || !strings.HasPrefix(attrs, "Expires=") || strings.Contains(attrs, ";") {
		t.Fatalf("Set-Cookie %q: want kbs-session-id=<32 hex>; Expires=... and nothing else", sc[0])
	}
	// An authenticated but not attested session has no token.
	resp, body = do("GET", "/kbs/v0/resource/default/key/1", "", map[string]string{"Cookie": "kbs-session-id=" + id})
	if resp.StatusCode != 401 || !strings.Contains(body, "/TokenNotFound") {
		t.Fatalf("unattested session: %d %s", resp.StatusCode, body)
	}
}

// A resource read with the attestation token as a bearer (no cookie) is
// served as Trustee serves it (api_server.rs:65-82), and the answer has
// exactly Trustee's JWE members and protected header (jwe/mod.rs).
func TestTrusteeBearerAndJWEShape(t *testing.T) {
	s, err := New(Options{Resources: map[string][]byte{"default/key/1": []byte("secret")}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, kty := range []string{"EC", "RSA"} {
		a, err := attest.New(attest.Options{Root: t.TempDir(), AllowSample: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := kbs.New(kbs.Options{Config: kbs.Config{URL: s.URL}, Attester: a, KeyType: kty})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := c.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", s.URL+"/kbs/v0/resource/default/key/1", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Raw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s bearer: %d %s", kty, resp.StatusCode, body)
		}
		var members map[string]string
		if err := json.Unmarshal(body, &members); err != nil {
			t.Fatal(err)
		}
		var names []string
		for k := range members {
			names = append(names, k)
		}
		sort.Strings(names)
		if strings.Join(names, ",") != "ciphertext,encrypted_key,iv,protected,tag" {
			t.Fatalf("%s JWE members %v", kty, names)
		}
		prot, _ := base64.RawURLEncoding.DecodeString(members["protected"])
		want := `{"alg":"RSA-OAEP-256","enc":"A256GCM"}`
		if kty == "EC" {
			want = `{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"crv":"P-256","kty":"EC","x":`
		}
		if !strings.HasPrefix(string(prot), want) {
			t.Fatalf("%s protected header %s", kty, prot)
		}
		if plain, err := kbs.DecryptResource(body, c.PrivateKey()); err != nil || string(plain) != "secret" {
			t.Fatalf("%s decrypt: %q %v", kty, plain, err)
		}
	}
	req, _ := http.NewRequest("GET", s.URL+"/kbs/v0/resource/default/key/1", nil)
	req.Header.Set("Authorization", "Bearer not.a.token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), `/TokenVerifierError","detail":"Token Verifier error"`) {
		t.Fatalf("forged bearer: %d %s", resp.StatusCode, body)
	}
}
