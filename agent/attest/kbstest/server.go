// Package kbstest is a test double of Trustee's Key Broker Service, for
// tests only. It follows Trustee's RCAR protocol closely (protocol version
// 0.4.0, kbs-session-id cookie, nonce, report-data binding over the JCS form
// of the runtime data, ES256 attestation token with expiry, JWE-encrypted
// resources, RFC 7807 errors) and verifies sample evidence, SNP evidence from
// go-sev-guest's fake device (against the fake's test-only ARK), and TDX
// quotes by structure only — go-tdx-guest's canned quote has fixed report
// data, so it cannot bind a fresh nonce. It also holds the fakes standing in
// for TEE hardware (FakeSNP, CannedTDXQuote).
package kbstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/jcs"
)

// ErrorTypePrefix prefixes the "type" of every problem document, as Trustee's does.
const ErrorTypePrefix = "https://github.com/confidential-containers/kbs/errors"

// Options configures the test KBS.
type Options struct {
	// Resources maps "repo/type/tag" to plaintext.
	Resources map[string][]byte
	// TokenTTL is the token lifetime (default 5 min).
	TokenTTL time.Duration
	// SelectHash, when set, is sent as the challenge's selected-hash-algorithm.
	SelectHash string
	// SNPRoot is the ARK trusted for SNP evidence.
	SNPRoot *x509.Certificate
}

type session struct {
	tee, nonce, hash string
	pub              *jose.JSONWebKey
	expiry           time.Time
	attested         bool
}

// Server is a running test KBS.
type Server struct {
	*httptest.Server
	opts   Options
	signer jose.Signer
	signPK *ecdsa.PrivateKey

	mu       sync.Mutex
	sessions map[string]*session
	fail     []int // status codes to answer the next requests with
	tamper   bool
	counts   map[string]int
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
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithType("JWT"))
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

// TokenKey is the public key attestation tokens are signed with.
func (s *Server) TokenKey() *ecdsa.PublicKey { return &s.signPK.PublicKey }

func problem(w http.ResponseWriter, code int, typ, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"type": ErrorTypePrefix + "/" + typ, "detail": detail})
}

// ServeHTTP implements http.Handler.
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
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/kbs/v0/auth":
		s.auth(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/kbs/v0/attest":
		s.attest(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/kbs/v0/resource/"):
		s.resource(w, r, strings.TrimPrefix(r.URL.Path, "/kbs/v0/resource/"))
	default:
		problem(w, http.StatusNotFound, "InvalidRequestPath", "invalid request path "+r.URL.Path)
	}
}

func (s *Server) count(ep string) {
	s.mu.Lock()
	s.counts[ep]++
	s.mu.Unlock()
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request) {
	s.count("auth")
	var req struct {
		Version     string `json:"version"`
		Tee         string `json:"tee"`
		ExtraParams struct {
			Supported []string `json:"supported-hash-algorithms"`
		} `json:"extra-params"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		problem(w, http.StatusUnauthorized, "RcarAuthFailed", "deserialize Request: "+err.Error())
		return
	}
	if req.Version != "0.4.0" {
		problem(w, http.StatusUnauthorized, "RcarAuthFailed",
			fmt.Sprintf("KBS Client Protocol Version Mismatch: expect =0.4.0 while the request is %s", req.Version))
		return
	}
	switch req.Tee {
	case attest.TeeSample, attest.TeeSNP, attest.TeeTDX:
	default:
		problem(w, http.StatusUnauthorized, "RcarAuthFailed", "unsupported tee "+req.Tee)
		return
	}
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	sess := &session{tee: req.Tee, nonce: base64.StdEncoding.EncodeToString(nonce), hash: "sha384", expiry: time.Now().Add(5 * time.Minute)}
	// Trustee answers extra-params with the JSON string "" unless it
	// negotiated a hash (only for IBM SE): kbs/src/attestation/mod.rs,
	// generate_extra_params.
	var extra any = ""
	if s.opts.SelectHash != "" {
		sess.hash = s.opts.SelectHash
		extra = map[string]any{"selected-hash-algorithm": s.opts.SelectHash}
	}
	sid := hex.EncodeToString(id)
	s.mu.Lock()
	s.sessions[sid] = sess
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "kbs-session-id", Value: sid, Path: "/", Expires: sess.expiry})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"nonce": sess.nonce, "extra-params": extra})
}

func (s *Server) session(r *http.Request) (string, *session) {
	c, err := r.Cookie("kbs-session-id")
	if err != nil {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[c.Value]
	if sess != nil && time.Now().After(sess.expiry) {
		delete(s.sessions, c.Value)
		return "", nil
	}
	return c.Value, sess
}

type attestation struct {
	InitData *struct {
		Format string `json:"format"`
		Body   string `json:"body"`
	} `json:"init-data"`
	RuntimeData struct {
		Nonce     string          `json:"nonce"`
		TeePubkey json.RawMessage `json:"tee-pubkey"`
	} `json:"runtime-data"`
	TeeEvidence struct {
		Primary    json.RawMessage `json:"primary_evidence"`
		Additional string          `json:"additional_evidence"`
	} `json:"tee-evidence"`
}

func (s *Server) attest(w http.ResponseWriter, r *http.Request) {
	s.count("attest")
	sid, sess := s.session(r)
	if sess == nil {
		problem(w, http.StatusUnauthorized, "RcarAttestFailed", "session not found")
		return
	}
	var a attestation
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&a); err != nil {
		problem(w, http.StatusUnauthorized, "RcarAttestFailed", "deserialize Attestation: "+err.Error())
		return
	}
	if a.RuntimeData.Nonce != sess.nonce {
		problem(w, http.StatusUnauthorized, "RcarAttestFailed", "the nonce in the handshake session is different from the client side")
		return
	}
	var pub jose.JSONWebKey
	if err := pub.UnmarshalJSON(a.RuntimeData.TeePubkey); err != nil || !pub.IsPublic() {
		problem(w, http.StatusUnauthorized, "RcarAttestFailed", fmt.Sprintf("tee-pubkey is not a public JWK: %v", err))
		return
	}
	var pubAny any
	_ = json.Unmarshal(a.RuntimeData.TeePubkey, &pubAny)
	canon, err := jcs.Marshal(map[string]any{"tee-pubkey": pubAny, "nonce": sess.nonce, "additional-evidence": a.TeeEvidence.Additional})
	if err != nil {
		problem(w, http.StatusUnauthorized, "RcarAttestFailed", err.Error())
		return
	}
	want, err := attest.Digest(sess.hash, canon)
	if err != nil {
		problem(w, http.StatusUnauthorized, "RcarAttestFailed", err.Error())
		return
	}
	var initDigest []byte
	if a.InitData != nil {
		if a.InitData.Format != "toml" {
			problem(w, http.StatusUnauthorized, "RcarAttestFailed", "unsupported init-data format "+a.InitData.Format)
			return
		}
		var doc struct {
			Algorithm string `toml:"algorithm"`
		}
		if _, err := toml.Decode(a.InitData.Body, &doc); err != nil {
			problem(w, http.StatusUnauthorized, "RcarAttestFailed", "init-data: "+err.Error())
			return
		}
		if initDigest, err = attest.Digest(doc.Algorithm, []byte(a.InitData.Body)); err != nil {
			problem(w, http.StatusUnauthorized, "RcarAttestFailed", "init-data: "+err.Error())
			return
		}
		s.mu.Lock()
		s.LastInitdata = a.InitData.Body
		s.mu.Unlock()
	}
	if err := s.verify(sess.tee, a.TeeEvidence.Primary, want, initDigest); err != nil {
		problem(w, http.StatusUnauthorized, "RcarAttestFailed", "verify TEE evidence failed: "+err.Error())
		return
	}
	exp := time.Now().Add(s.opts.TokenTTL)
	claims, _ := json.Marshal(map[string]any{
		"exp": exp.Unix(), "iat": time.Now().Unix(), "iss": "kbstest",
		"tee": sess.tee, "tee-pubkey": pubAny,
	})
	jws, err := s.signer.Sign(claims)
	if err != nil {
		problem(w, http.StatusInternalServerError, "TokenIssueFailed", err.Error())
		return
	}
	tok, _ := jws.CompactSerialize()
	s.mu.Lock()
	sess.attested, sess.pub, sess.expiry = true, &pub, exp
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "kbs-session-id", Value: sid, Path: "/", Expires: exp})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"token": tok})
}

// verify checks evidence of the session's TEE against the expected report data.
func (s *Server) verify(tee string, ev json.RawMessage, want, initDigest []byte) error {
	switch tee {
	case attest.TeeSample:
		_, rd, err := attest.ParseSampleEvidence(ev)
		if err != nil {
			return err
		}
		if string(rd) != string(want) {
			return fmt.Errorf("REPORT_DATA is different from that in Sample Quote")
		}
		return nil
	case attest.TeeSNP:
		p, err := attest.ParseSNPEvidence(ev)
		if err != nil {
			return err
		}
		if s.opts.SNPRoot == nil {
			return fmt.Errorf("no trusted ARK configured")
		}
		if err := VerifySNP(p, s.opts.SNPRoot); err != nil {
			return err
		}
		padded := make([]byte, 64)
		copy(padded, want)
		if got := attest.Bytes(p.Report.ReportData); string(got) != string(padded) {
			return fmt.Errorf("report data mismatch: got %x, want %x", got, padded)
		}
		if initDigest != nil {
			hd := make([]byte, 32)
			copy(hd, initDigest)
			if got := attest.Bytes(p.Report.HostData); string(got) != string(hd) {
				return fmt.Errorf("HOST_DATA %x does not match init-data digest %x", got, hd)
			}
		}
		return nil
	case attest.TeeTDX:
		// Structure only: the canned quote cannot carry this nonce's report data.
		p, err := attest.ParseTDXEvidence(ev)
		if err != nil {
			return err
		}
		if len(p.Body.GetReportData()) != 64 || len(p.Body.GetMrConfigId()) != 48 {
			return fmt.Errorf("malformed TD quote body")
		}
		return nil
	}
	return fmt.Errorf("unsupported tee %q", tee)
}

func (s *Server) resource(w http.ResponseWriter, r *http.Request, path string) {
	s.count("resource")
	_, sess := s.session(r)
	if sess == nil || !sess.attested {
		problem(w, http.StatusUnauthorized, "TokenNotFound", "Attestation Token not found")
		return
	}
	s.mu.Lock()
	data, ok := s.opts.Resources[path]
	tamper := s.tamper
	s.tamper = false
	pub := sess.pub
	s.mu.Unlock()
	if !ok {
		problem(w, http.StatusNotFound, "ResourceNotFound", "resource not found: "+path)
		return
	}
	alg := jose.ECDH_ES_A256KW
	if _, isEC := pub.Key.(*ecdsa.PublicKey); !isEC {
		alg = jose.RSA_OAEP_256
	}
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: alg, Key: pub.Key}, nil)
	if err != nil {
		problem(w, http.StatusInternalServerError, "JweError", err.Error())
		return
	}
	obj, err := enc.Encrypt(data)
	if err != nil {
		problem(w, http.StatusInternalServerError, "JweError", err.Error())
		return
	}
	out := obj.FullSerialize()
	if tamper {
		var m map[string]any
		_ = json.Unmarshal([]byte(out), &m)
		ct, _ := base64.RawURLEncoding.DecodeString(m["ciphertext"].(string))
		if len(ct) > 0 {
			ct[0] ^= 0xff
		}
		m["ciphertext"] = base64.RawURLEncoding.EncodeToString(ct)
		b, _ := json.Marshal(m)
		out = string(b)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(out))
}
