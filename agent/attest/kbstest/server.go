// Package kbstest is a test double of Trustee's Key Broker Service, for
// tests only, and the fakes standing in for TEE hardware (FakeSNP,
// CannedTDXQuote).
//
// The double answers with the shapes Trustee's source produces, each cited
// next to the code that makes it (confidential-containers/trustee at
// 78962cd4, kbs-types 0.18): the routes and status codes of
// kbs/src/api_server.rs and kbs/src/error.rs (401 for every error except an
// unknown plugin, 404 — a missing resource is a 401), the problem documents
// {"type", "detail"} with Trustee's variant names and texts, the
// kbs-session-id cookie with only an Expires attribute, sessions that expire
// five minutes after auth whatever the token says, EAR attestation tokens,
// and resource JWEs built by hand the way kbs/src/jwe/mod.rs builds them. It
// verifies sample evidence, SNP evidence from go-sev-guest's fake device
// (against the fake's test-only ARK), and TDX quotes by structure only —
// go-tdx-guest's canned quote has fixed report data, so it cannot bind a
// fresh nonce.
package kbstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/cocoon-tee/cocoon/agent/attest"
)

// ErrorTypePrefix prefixes the "type" of every problem document
// (trustee kbs/src/error.rs:15).
const ErrorTypePrefix = "https://github.com/confidential-containers/kbs/errors"

// Problem "type" suffixes: the names of Trustee's error variants
// (strum AsRefStr of kbs/src/error.rs:20-106).
const (
	TypeAttestationError   = "AttestationError"
	TypePluginNotFound     = "PluginNotFound"
	TypePluginInternal     = "PluginInternalError"
	TypePolicyDeny         = "PolicyDeny"
	TypeTokenNotFound      = "TokenNotFound"
	TypeTokenVerifierError = "TokenVerifierError"
	TypeJweError           = "JweError"
)

// Options configures the test KBS.
type Options struct {
	// Resources maps "repo/type/tag" to plaintext.
	Resources map[string][]byte
	// TokenTTL is the token lifetime (default 5 min, Trustee's
	// attestation-service/src/ear_token/mod.rs:12).
	TokenTTL time.Duration
	// SessionTTL is how long a session lives after auth (default 5 min,
	// kbs/src/attestation/config.rs:7); attesting does not extend it
	// (session.rs:94-101).
	SessionTTL time.Duration
	// SelectHash, when set, is sent as the challenge's
	// selected-hash-algorithm for any TEE. Trustee does this only for IBM SE
	// (sha512); the knob tests the client's negotiation on TEEs we have.
	SelectHash string
	// SNPRoot is the ARK trusted for SNP evidence.
	SNPRoot *x509.Certificate
	// Policy is the resource policy: it sees the attested TEE and the
	// resource path. Nil allows everything, as the allow-all policy CoCo's
	// tests install does; TrusteeDefaultPolicy is Trustee's built-in one.
	Policy func(tee, path string) bool
	// UntrustedTokens makes the token verifier reject every token, as a KBS
	// does that does not trust its attestation service's signer.
	UntrustedTokens bool
}

// TrusteeDefaultPolicy is Trustee's built-in resource policy: any resource
// to any TEE but the sample one (kbs/sample_policies/default.rego).
func TrusteeDefaultPolicy(tee, _ string) bool { return tee != attest.TeeSample }

type session struct {
	tee, nonce, hash string
	expiry           time.Time
	token            string // set once attested
}

// Server is a running test KBS.
type Server struct {
	*httptest.Server
	opts   Options
	signer jose.Signer
	signPK *ecdsa.PrivateKey

	mu         sync.Mutex
	sessions   map[string]*session
	fail       []int // status codes to answer the next requests with
	tamper     bool
	counts     map[string]int
	attestErrs []string
	// LastInitdata is the init-data body of the last attest request.
	LastInitdata string
}

// New starts a test KBS over plain HTTP on 127.0.0.1.
func New(o Options) (*Server, error) {
	s, err := build(o)
	if err != nil {
		return nil, err
	}
	s.Server = httptest.NewServer(s)
	return s, nil
}

// NewTLS starts it over HTTPS with a self-signed certificate.
func NewTLS(o Options) (*Server, error) {
	s, err := build(o)
	if err != nil {
		return nil, err
	}
	s.Server = httptest.NewTLSServer(s)
	return s, nil
}

func build(o Options) (*Server, error) {
	if o.TokenTTL == 0 {
		o.TokenTTL = 5 * time.Minute
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = 5 * time.Minute
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	// ES256 with the signer's JWK in the header, as the EAR broker signs
	// (attestation-service/src/ear_token/broker.rs:332-338).
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return &Server{opts: o, signer: sig, signPK: k, sessions: map[string]*session{}, counts: map[string]int{}}, nil
}

// SetResource adds or replaces a resource.
func (s *Server) SetResource(path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.Resources == nil {
		s.opts.Resources = map[string][]byte{}
	}
	s.opts.Resources[path] = data
}

// Count returns how many requests an endpoint ("auth", "attest", "resource") got.
func (s *Server) Count(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[endpoint]
}

// FailNext makes the next len(codes) requests answer with those statuses.
// Trustee itself answers only 401 and 404; other codes stand for proxies
// and KBS restarts.
func (s *Server) FailNext(codes ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, codes...)
}

// TamperNext corrupts the ciphertext of the next resource response.
func (s *Server) TamperNext() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tamper = true
}

// ExpireSessions forgets every session, as a KBS restart would.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions = map[string]*session{}
}

// AttestErrors are the reasons of refused attestations. Trustee logs them
// and answers only "RCAR handshake Attest failed"; tests read them here.
func (s *Server) AttestErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.attestErrs...)
}

// TokenKey is the public key attestation tokens are signed with.
func (s *Server) TokenKey() *ecdsa.PublicKey { return &s.signPK.PublicKey }

// problem writes Trustee's error response: the status (404 for a bad path
// or an unknown plugin, 401 for everything else), and ErrorInformation
// {"type": prefix/Variant, "detail": Display text} with no Content-Type
// header (kbs/src/error.rs:108-135; kbs-types ErrorInformation).
func problem(w http.ResponseWriter, code int, variant, detail string) {
	body, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Detail string `json:"detail"`
	}{ErrorTypePrefix + "/" + variant, detail})
	w.Header()["Content-Type"] = nil // actix sets none; keep net/http from sniffing one
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// ServeHTTP routes as kbs/src/api_server.rs:176-180 and 215-476 do: every
// path below /kbs/v0/ names a plugin by its first segment; auth and attest
// are POST-only built-ins; anything else is looked up as a plugin.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if len(s.fail) > 0 {
		code := s.fail[0]
		s.fail = s.fail[1:]
		s.mu.Unlock()
		problem(w, code, "Injected", "injected failure")
		return
	}
	s.mu.Unlock()
	rest, ok := strings.CutPrefix(r.URL.Path, "/kbs/v0/")
	if !ok {
		// Outside the KBS prefix actix has no route: a bare 404.
		w.WriteHeader(http.StatusNotFound)
		return
	}
	plugin, path, _ := strings.Cut(rest, "/")
	switch {
	case plugin == "auth" && r.Method == http.MethodPost:
		s.auth(w, r)
	case plugin == "attest" && r.Method == http.MethodPost:
		s.attest(w, r)
	case plugin == "resource":
		s.resource(w, r, path)
	default:
		// A GET on auth lands here too: it is looked up as a plugin
		// (api_server.rs:382-388).
		problem(w, http.StatusNotFound, TypePluginNotFound, "Plugin "+plugin+" not found")
	}
}

func (s *Server) count(ep string) {
	s.mu.Lock()
	s.counts[ep]++
	s.mu.Unlock()
}

// setCookie sends the session cookie as actix serialises
// Cookie::build(KBS_SESSION_ID, id).expires(t): name, value and Expires,
// no Path, Secure or HttpOnly (kbs/src/attestation/session.rs:72-83).
func setCookie(w http.ResponseWriter, id string, expiry time.Time) {
	w.Header().Add("Set-Cookie", "kbs-session-id="+id+"; Expires="+expiry.UTC().Format(http.TimeFormat))
}
