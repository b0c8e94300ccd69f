package kbstest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
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
