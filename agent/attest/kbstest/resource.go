package kbstest

import (
	"net/http"
	"strings"
	"time"
)

// resource answers /kbs/v0/resource/<path> in the order of
// kbs/src/api_server.rs:382-473: writes need the admin; a read needs a
// token (the session's, else an Authorization bearer), which is verified,
// then the resource policy, then the plugin reads the resource, and the
// answer is a JWE to the TEE key the token names.
func (s *Server) resource(w http.ResponseWriter, r *http.Request, path string) {
	s.count("resource")
	if r.Method != http.MethodGet {
		// POST and DELETE go through the admin check (api_server.rs:391-397),
		// whose error converts to the AdminAuthInitialization variant.
		problem(w, http.StatusUnauthorized, "AdminAuthInitialization", "failed to initialize [admin] configuration: admin access denied")
		return
	}
	raw := s.token(r)
	if raw == "" {
		problem(w, http.StatusUnauthorized, TypeTokenNotFound, "Attestation Token not found")
		return
	}
	tok, err := s.verifyToken(raw, time.Now())
	if err != nil {
		problem(w, http.StatusUnauthorized, TypeTokenVerifierError, "Token Verifier error")
		return
	}
	if s.opts.Policy != nil && !s.opts.Policy(tok.tee, path) {
		problem(w, http.StatusUnauthorized, TypePolicyDeny, "Access denied by policy")
		return
	}
	s.mu.Lock()
	data, ok := s.opts.Resources[path]
	tamper := s.tamper
	s.tamper = false
	s.mu.Unlock()
	// A path that is not repo/type/tag, or names nothing, fails inside the
	// plugin (plugins/implementations/resource/kv_storage.rs:22-24,
	// backend.rs ResourceDesc): PluginInternalError, whose Display hides
	// the cause — a missing resource is a 401, not a 404.
	if !ok || strings.Count(path, "/") != 2 {
		problem(w, http.StatusUnauthorized, TypePluginInternal, "Plugin internal error")
		return
	}
	jwe, err := sealJWE(tok.pub, data)
	if err != nil {
		problem(w, http.StatusUnauthorized, TypeJweError, "JWE failed")
		return
	}
	body, err := marshalJWE(jwe, tamper)
	if err != nil {
		problem(w, http.StatusUnauthorized, TypeJweError, "JWE failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// token finds the attestation token as ApiServer::get_attestation_token
// does (api_server.rs:65-82): the attested session's, else a bearer token.
func (s *Server) token(r *http.Request) string {
	if _, sess := s.sessionByCookie(r); sess != nil {
		s.mu.Lock()
		t := sess.token
		s.mu.Unlock()
		if t != "" {
			return t
		}
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}
