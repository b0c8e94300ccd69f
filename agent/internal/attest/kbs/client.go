// Package kbs is the agent's client of a Trustee Key Broker Service: the RCAR
// handshake (auth → challenge → attest → token), resource retrieval with
// JWE decryption, and the kbs:/// resolvers the image and secret code use.
package kbs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/jcs"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// ProtocolVersion is the only KBS protocol version Trustee accepts.
const ProtocolVersion = "0.4.0"

// SessionCookie is the cookie Trustee tracks attestation sessions with.
const SessionCookie = "kbs-session-id"

// DefaultHashAlgorithm binds runtime data when the KBS selects none.
const DefaultHashAlgorithm = "sha384"

// SupportedHashAlgorithms is what the client offers in its auth request.
var SupportedHashAlgorithms = []string{"sha256", "sha384", "sha512"}

// maxResponse bounds any KBS response body.
const maxResponse = 16 << 20

// Options configures a Client.
type Options struct {
	Config   Config
	Attester attest.Attester
	// Initdata is the raw initdata TOML, sent as init-data when not nil.
	Initdata []byte
	// Timeout bounds each HTTP request (default 30 s).
	Timeout time.Duration
	// Attempts is how often a request is tried on network errors and 5xx
	// (default 5); Backoff is the first wait, doubled each time up to 8 s
	// (default 500 ms).
	Attempts int
	Backoff  time.Duration
	// KeyType is "EC" (P-256, ECDH-ES+A256KW; default) or "RSA" (RSA-OAEP-256).
	KeyType string
	Log     *slog.Logger
	// Now is the clock for token expiry (tests); default time.Now.
	Now func() time.Time
}

// Client talks to one KBS. It is safe for concurrent use; attestation runs
// once at a time and its token is shared.
type Client struct {
	opts    Options
	http    *http.Client
	key     crypto.PrivateKey
	pubJWK  map[string]any
	mu      sync.Mutex // serialises attestation
	tokenMu sync.Mutex
	token   *Token
}

// New builds a client with a fresh per-boot TEE key pair.
func New(o Options) (*Client, error) {
	if o.Config.URL == "" {
		return nil, errdefs.ErrFailedPrecondition.WithMessage("no KBS URL configured (initdata aa.toml [token_configs.kbs] url, cdh.toml [kbc] url or agent.aa_kbc_params)")
	}
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Attester == nil {
		return nil, errors.New("kbs: no attester")
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Config.URL = strings.TrimRight(o.Config.URL, "/")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.Config.CertPEM != "" {
		pool, err := certPool(o.Config.CertPEM)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	c := &Client{opts: o, http: &http.Client{Transport: tr, Jar: jar, Timeout: o.Timeout}}
	if err := c.newKey(o.KeyType); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) newKey(kty string) error {
	var (
		key    any
		public any
		alg    jose.KeyAlgorithm
		err    error
	)
	switch kty {
	case "", "EC":
		var k *ecdsa.PrivateKey
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err == nil {
			key, public, alg = k, &k.PublicKey, jose.ECDH_ES_A256KW
		}
	case "RSA":
		var k *rsa.PrivateKey
		k, err = rsa.GenerateKey(rand.Reader, 2048)
		if err == nil {
			key, public, alg = k, &k.PublicKey, jose.RSA_OAEP_256
		}
	default:
		return fmt.Errorf("kbs: tee key type %q (want EC or RSA)", kty)
	}
	if err != nil {
		return err
	}
	raw, err := jose.JSONWebKey{Key: public}.MarshalJSON()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &c.pubJWK); err != nil {
		return err
	}
	c.pubJWK["alg"] = string(alg)
	c.key = key
	return nil
}

// PublicJWK is the TEE public key sent as runtime-data.tee-pubkey.
func (c *Client) PublicJWK() map[string]any { return c.pubJWK }

// PrivateKey is the TEE private key (to decrypt what the KBS wraps to it).
func (c *Client) PrivateKey() crypto.PrivateKey { return c.key }

// Token returns a valid attestation token, attesting when there is none
// or it has expired.
func (c *Client) Token(ctx context.Context) (*Token, error) {
	if t := c.cachedToken(); t != nil {
		return t, nil
	}
	return c.attest(ctx, nil)
}

func (c *Client) cachedToken() *Token {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token != nil && c.token.Valid(c.opts.Now()) {
		return c.token
	}
	return nil
}

// Attest runs the RCAR handshake now, replacing any cached token.
func (c *Client) Attest(ctx context.Context) (*Token, error) {
	c.tokenMu.Lock()
	c.token = nil
	c.tokenMu.Unlock()
	return c.attest(ctx, nil)
}

// attest runs the handshake unless another caller refreshed the token
// meanwhile; stale, when not nil, is the token the caller found wanting.
func (c *Client) attest(ctx context.Context, stale *Token) (*Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.cachedToken(); t != nil && t != stale {
		return t, nil
	}
	var tok *Token
	err := c.retry(ctx, "attestation", func() error {
		var err error
		tok, err = c.handshake(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.tokenMu.Lock()
	c.token = tok
	c.tokenMu.Unlock()
	c.opts.Log.InfoContext(ctx, "attested to KBS", "kbs", c.opts.Config.URL, "tee", c.opts.Attester.Tee(), "expires", tok.Expiry)
	return tok, nil
}

type challenge struct {
	Nonce       string          `json:"nonce"`
	ExtraParams json.RawMessage `json:"extra-params"`
}

// selectedHash reads the challenge's extra-params. Trustee sends the JSON
// string "" for every TEE but IBM SE, which gets an object naming the
// selected hash algorithm (trustee kbs/src/attestation/mod.rs,
// generate_extra_params); the default applies unless one is named.
func (ch challenge) selectedHash() (string, error) {
	raw := bytes.TrimSpace(ch.ExtraParams)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) || bytes.Equal(raw, []byte(`""`)) {
		return DefaultHashAlgorithm, nil
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(raw, &params); err != nil {
		return "", fmt.Errorf("kbs auth: extra-params is neither \"\" nor an object: %.64s", raw)
	}
	sel, ok := params["selected-hash-algorithm"]
	if !ok {
		return DefaultHashAlgorithm, nil
	}
	var alg string
	if err := json.Unmarshal(sel, &alg); err != nil || alg == "" {
		return "", fmt.Errorf("kbs auth: selected-hash-algorithm is not a hash name: %.64s", sel)
	}
	return strings.ToLower(alg), nil
}

func (c *Client) handshake(ctx context.Context) (*Token, error) {
	auth := map[string]any{
		"version":      ProtocolVersion,
		"tee":          c.opts.Attester.Tee(),
		"extra-params": map[string]any{"supported-hash-algorithms": SupportedHashAlgorithms},
	}
	body, err := c.post(ctx, "/kbs/v0/auth", auth)
	if err != nil {
		return nil, err
	}
	var ch challenge
	if err := json.Unmarshal(body, &ch); err != nil {
		return nil, permanent(fmt.Errorf("kbs auth: challenge is not JSON: %w", err))
	}
	if ch.Nonce == "" {
		return nil, permanent(errors.New("kbs auth: challenge has no nonce"))
	}
	alg, err := ch.selectedHash()
	if err != nil {
		return nil, permanent(err)
	}
	rd, err := ReportData(alg, ch.Nonce, c.pubJWK, "")
	if err != nil {
		return nil, permanent(err)
	}
	ev, err := c.opts.Attester.Evidence(ctx, rd)
	if err != nil {
		return nil, permanent(fmt.Errorf("kbs attest: evidence: %w", err))
	}
	req := map[string]any{
		"runtime-data": map[string]any{"nonce": ch.Nonce, "tee-pubkey": c.pubJWK},
		"tee-evidence": map[string]any{"primary_evidence": ev, "additional_evidence": ""},
	}
	if c.opts.Initdata != nil {
		req["init-data"] = map[string]any{"format": "toml", "body": string(c.opts.Initdata)}
	}
	body, err = c.post(ctx, "/kbs/v0/attest", req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Token == "" {
		return nil, permanent(fmt.Errorf("kbs attest: response has no token (%v)", err))
	}
	return ParseToken(resp.Token)
}

// ReportData is the hash (alg) of the JCS form of
// {"nonce", "tee-pubkey", "additional-evidence"}: what the TEE report binds.
func ReportData(alg, nonce string, pub map[string]any, additional string) ([]byte, error) {
	canon, err := jcs.Marshal(map[string]any{"nonce": nonce, "tee-pubkey": pub, "additional-evidence": additional})
	if err != nil {
		return nil, err
	}
	return attest.Digest(alg, canon)
}

func (c *Client) post(ctx context.Context, path string, v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.opts.Config.URL+path, bytes.NewReader(raw))
	if err != nil {
		return nil, permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

// do sends one request and classes the outcome: 2xx → body; errors carry
// the KBS's RFC 7807 text verbatim.
func (c *Client) do(req *http.Request) ([]byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, errs.Newf(errdefs.ErrUnavailable, "KBS %s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, errs.Newf(errdefs.ErrUnavailable, "KBS %s %s: read: %v", req.Method, req.URL.Path, err)
	}
	if len(body) > maxResponse {
		return nil, permanent(fmt.Errorf("KBS %s %s: response larger than %d bytes", req.Method, req.URL.Path, maxResponse))
	}
	if resp.StatusCode/100 == 2 {
		return body, nil
	}
	return nil, &StatusError{Code: resp.StatusCode, Method: req.Method, Path: req.URL.Path, Body: problemText(body)}
}

func problemText(body []byte) string {
	const max = 4096
	s := strings.TrimSpace(string(body))
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// StatusError is a non-2xx KBS reply; Body is the problem document as sent.
type StatusError struct {
	Code         int
	Method, Path string
	Body         string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("KBS %s %s: %d %s: %s", e.Method, e.Path, e.Code, http.StatusText(e.Code), e.Body)
}

// Unwrap classes the status for errdefs (and so for ttrpc codes).
func (e *StatusError) Unwrap() error {
	switch {
	case e.Code == http.StatusUnauthorized, e.Code == http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case e.Code == http.StatusNotFound:
		return errdefs.ErrNotFound
	case e.Code >= 500:
		return errdefs.ErrUnavailable
	}
	return errdefs.ErrUnknown
}

// Problem types (the last segment of "type") that change what a 401 means
// (trustee kbs/src/error.rs variant names).
const (
	problemPluginInternal = "PluginInternalError"
	problemPolicyDeny     = "PolicyDeny"
)

// ProblemType is the last path segment of the RFC 7807 "type" of the
// body (Trustee's error variant, e.g. "TokenNotFound"), or "" when the
// body is not a problem document.
func (e *StatusError) ProblemType() string {
	var p struct {
		Type string `json:"type"`
	}
	if json.Unmarshal([]byte(e.Body), &p) != nil || p.Type == "" {
		return ""
	}
	return p.Type[strings.LastIndexByte(p.Type, '/')+1:]
}

type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

// permanent marks an error retrying cannot fix.
func permanent(err error) error { return permanentError{err} }

func retryable(err error) bool {
	var p permanentError
	if errors.As(err, &p) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code >= 500
	}
	return errdefs.IsUnavailable(err)
}

// retry runs f until it succeeds, fails permanently, or attempts run out.
func (c *Client) retry(ctx context.Context, what string, f func() error) error {
	wait := c.opts.Backoff
	var err error
	for i := 1; ; i++ {
		if err = f(); err == nil || !retryable(err) {
			return err
		}
		if i >= c.opts.Attempts {
			return fmt.Errorf("%s failed after %d attempts: %w", what, i, err)
		}
		c.opts.Log.WarnContext(ctx, "KBS request failed, retrying", "what", what, "attempt", i, "attest_error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
		if wait *= 2; wait > 8*time.Second {
			wait = 8 * time.Second
		}
	}
}
