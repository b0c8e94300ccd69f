package kbstest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/jcs"
)

// kbsTees are the tee names kbs-types' Tee enum deserialises (lowercase
// variant names); any other name fails to deserialise the Request.
var kbsTees = map[string]bool{
	"azsnpvtpm": true, "aztdxvtpm": true, "nvidia": true, "sev": true, "sgx": true, "snp": true,
	"tdx": true, "cca": true, "csv": true, "se": true, "hygondcu": true, "tpm": true,
	"sample": true, "sampledevice": true,
}

var semver = regexp.MustCompile(`^\d+\.\d+\.\d+$`)

// authFailed answers an auth error: Error::AttestationError wrapping
// RcarAuthFailed, whose Display carries the first line of its cause
// (kbs/src/error.rs:31-33, attestation/error.rs:36-40).
func authFailed(w http.ResponseWriter, cause string) {
	problem(w, http.StatusUnauthorized, TypeAttestationError, "Attestation error: RCAR handshake Auth failed: "+cause)
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request) {
	s.count("auth")
	// kbs-types Request {version, tee, extra-params} (attestation/backend.rs:244-257).
	var req struct {
		Version     *string         `json:"version"`
		Tee         *string         `json:"tee"`
		ExtraParams json.RawMessage `json:"extra-params"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.Version == nil || req.Tee == nil || !kbsTees[*req.Tee] {
		authFailed(w, "deserialize Request")
		return
	}
	if !semver.MatchString(*req.Version) {
		authFailed(w, "failed to parse KBS version")
		return
	}
	if *req.Version != "0.4.0" {
		authFailed(w, "KBS Client Protocol Version Mismatch: expect =0.4.0 while the request is "+*req.Version)
		return
	}
	extra, hash, err := challengeParams(*req.Tee, req.ExtraParams, s.opts.SelectHash)
	if err != nil {
		authFailed(w, "Attestation Service generate challenge failed")
		return
	}
	// A 32-byte nonce, standard base64 with padding (backend.rs:60-70).
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	// The session id is a UUIDv4 in its simple form (session.rs:60).
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	sid := hex.EncodeToString(id)
	sess := &session{tee: *req.Tee, nonce: base64.StdEncoding.EncodeToString(nonce), hash: hash, expiry: time.Now().Add(s.opts.SessionTTL)}
	s.mu.Lock()
	s.sessions[sid] = sess
	s.mu.Unlock()
	setCookie(w, sid, sess.expiry)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"nonce": sess.nonce, "extra-params": extra})
}

// challengeParams is the challenge's extra-params and the hash binding the
// runtime data. Trustee answers the JSON string "" for every TEE but IBM
// SE, which gets {"selected-hash-algorithm": "sha512"} when the client
// offers it (kbs/src/attestation/mod.rs:42-78, backend.rs:72-82).
func challengeParams(tee string, clientExtra json.RawMessage, forced string) (any, string, error) {
	if forced != "" {
		return map[string]any{"selected-hash-algorithm": forced}, forced, nil
	}
	if tee != "se" {
		return "", "sha384", nil
	}
	var p struct {
		Supported []string `json:"supported-hash-algorithms"`
	}
	if json.Unmarshal(clientExtra, &p) != nil || p.Supported == nil {
		return "", "sha384", nil
	}
	for _, a := range p.Supported {
		if a == "sha512" || a == "SHA512" || a == "Sha512" {
			return map[string]any{"selected-hash-algorithm": "sha512"}, "sha512", nil
		}
	}
	return nil, "", errors.New("SE TEE does not support sha512")
}

// sessionByCookie returns the live session the request's cookie names.
// Expired sessions are forgotten (session.rs:134-145).
func (s *Server) sessionByCookie(r *http.Request) (string, *session) {
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
	RuntimeData *struct {
		Nonce     string          `json:"nonce"`
		TeePubkey json.RawMessage `json:"tee-pubkey"`
	} `json:"runtime-data"`
	TeeEvidence *struct {
		Primary    json.RawMessage `json:"primary_evidence"`
		Additional string          `json:"additional_evidence"`
	} `json:"tee-evidence"`
}

// attest answers POST /kbs/v0/attest. Every refusal is the same 401: the
// RcarAttestFailed variant does not print its cause (attestation/error.rs:42-46),
// so a client learns nothing but "RCAR handshake Attest failed"; the cause
// is kept for tests (AttestErrors).
func (s *Server) attest(w http.ResponseWriter, r *http.Request) {
	s.count("attest")
	sid, expiry, body, err := s.attestOnce(w, r)
	if err != nil {
		s.mu.Lock()
		s.attestErrs = append(s.attestErrs, err.Error())
		s.mu.Unlock()
		problem(w, http.StatusUnauthorized, TypeAttestationError, "Attestation error: RCAR handshake Attest failed")
		return
	}
	setCookie(w, sid, expiry)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// attestOnce follows backend.rs:285-435: cookie, body, session; an already
// attested session gets its old token back; then nonce, evidence, token.
func (s *Server) attestOnce(w http.ResponseWriter, r *http.Request) (sid string, expiry time.Time, body []byte, err error) {
	if _, err := r.Cookie("kbs-session-id"); err != nil {
		return "", time.Time{}, nil, errors.New("cookie not found")
	}
	var a attestation
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&a); err != nil || a.RuntimeData == nil || a.TeeEvidence == nil {
		return "", time.Time{}, nil, fmt.Errorf("deserialize Attestation: %v", err)
	}
	sid, sess := s.sessionByCookie(r)
	if sess == nil {
		return "", time.Time{}, nil, errors.New("session not found")
	}
	s.mu.Lock()
	old := sess.token
	s.mu.Unlock()
	if old != "" {
		body, err = json.Marshal(map[string]string{"token": old})
		return sid, sess.expiry, body, err
	}
	if a.RuntimeData.Nonce != sess.nonce {
		return "", time.Time{}, nil, errors.New("the nonce in the handshake session is different from the client side in KBS protocol's Attestation message")
	}
	var pubAny any
	if err := json.Unmarshal(a.RuntimeData.TeePubkey, &pubAny); err != nil {
		return "", time.Time{}, nil, fmt.Errorf("tee-pubkey: %w", err)
	}
	canon, err := jcs.Marshal(map[string]any{"tee-pubkey": pubAny, "nonce": sess.nonce, "additional-evidence": a.TeeEvidence.Additional})
	if err != nil {
		return "", time.Time{}, nil, err
	}
	want, err := attest.Digest(sess.hash, canon)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	var initDigest []byte
	if a.InitData != nil {
		if a.InitData.Format != "toml" {
			return "", time.Time{}, nil, fmt.Errorf("unsupported init-data format %q", a.InitData.Format)
		}
		var doc struct {
			Algorithm string `toml:"algorithm"`
		}
		if _, err := toml.Decode(a.InitData.Body, &doc); err != nil {
			return "", time.Time{}, nil, fmt.Errorf("init-data: %w", err)
		}
		if initDigest, err = attest.Digest(doc.Algorithm, []byte(a.InitData.Body)); err != nil {
			return "", time.Time{}, nil, fmt.Errorf("init-data: %w", err)
		}
		s.mu.Lock()
		s.LastInitdata = a.InitData.Body
		s.mu.Unlock()
	}
	if err := s.verify(sess.tee, a.TeeEvidence.Primary, want, initDigest); err != nil {
		return "", time.Time{}, nil, fmt.Errorf("verify TEE evidence failed: %w", err)
	}
	now := time.Now()
	claims, err := json.Marshal(earClaims(sess.tee, sess.nonce, pubAny, want, initDigest, now, now.Add(s.opts.TokenTTL)))
	if err != nil {
		return "", time.Time{}, nil, err
	}
	jws, err := s.signer.Sign(claims)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", time.Time{}, nil, err
	}
	s.mu.Lock()
	sess.token = tok
	s.mu.Unlock()
	body, err = json.Marshal(map[string]string{"token": tok})
	return sid, sess.expiry, body, err
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
