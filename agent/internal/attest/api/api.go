// Package api is the workload-facing REST API of CoCo's api-server-rest,
// served on 127.0.0.1:8006 inside the pod's network namespace: KBS resources
// (/cdh/resource/...), the attestation token (/aa/token), raw TEE evidence
// (/aa/evidence), additional-device evidence (/aa/additional-evidence),
// workload runtime measurements (POST /aa/aael) and, cocoon's own, evidence
// binding the policy decision log's head (/cocoon/decisions/head). Which groups are served is set by the
// agent's guest_components_rest_api setting; the head belongs to the
// attestation group.
package api

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/kbs"
)

// DefaultAddr is where workloads expect the API.
const DefaultAddr = "127.0.0.1:8006"

// Modes of guest_components_rest_api.
const (
	ModeAll         = "all"
	ModeAttestation = "attestation"
	ModeResource    = "resource"
)

// Resolver fetches kbs:/// resources.
type Resolver interface {
	Resolve(ctx context.Context, uri string) ([]byte, error)
}

// TokenSource yields the KBS attestation token and the TEE key it is bound to.
type TokenSource interface {
	Token(ctx context.Context) (*kbs.Token, error)
	PrivateKey() crypto.PrivateKey
}

// Deps are what the handlers call; nil members answer 503.
type Deps struct {
	Resources Resolver
	Tokens    TokenSource
	Attester  attest.Attester
	Log       *slog.Logger
	// DecisionHead returns the decision log's head ("" when there is none
	// yet); nil answers 503.
	DecisionHead func() string
	// Events is the runtime measurement log POST /aa/aael appends to; nil
	// answers as the attestation agent without an event log (NotEnabled).
	// Leave it nil rather than holding a nil pointer.
	Events Recorder
	// EventsMeasured says that Events extends a hardware register (TDX
	// RTMR); when false the answer is NotSupported and nothing is written,
	// as the attestation agent does on SNP.
	EventsMeasured bool
}

type handler struct {
	d                      Deps
	resources, attestation bool
}

// NewHandler returns the API for mode (all, attestation or resource).
func NewHandler(d Deps, mode string) (http.Handler, error) {
	h := &handler{d: d}
	switch mode {
	case ModeAll:
		h.resources, h.attestation = true, true
	case ModeAttestation:
		h.attestation = true
	case ModeResource:
		h.resources = true
	default:
		return nil, fmt.Errorf("guest_components_rest_api %q: want all, attestation or resource", mode)
	}
	if h.d.Log == nil {
		h.d.Log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// route is one path of the API: its group and its method.
type route struct {
	attestation bool // else the resource group
	method      string
	serve       func(*handler, http.ResponseWriter, *http.Request)
}

// lookup finds the route of a path.
func lookup(p string) (route, bool) {
	switch p {
	case "/aa/token":
		return route{true, http.MethodGet, (*handler).token}, true
	case "/aa/evidence":
		return route{true, http.MethodGet, (*handler).evidence}, true
	case AdditionalEvidencePath:
		return route{true, http.MethodGet, (*handler).additionalEvidence}, true
	case AAELPath:
		return route{true, http.MethodPost, (*handler).aael}, true
	case HeadPath:
		return route{true, http.MethodGet, (*handler).decisionHead}, true
	}
	if strings.HasPrefix(p, "/cdh/resource/") {
		return route{false, http.MethodGet, nil}, true
	}
	return route{}, false
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	rt, ok := lookup(p)
	if !ok {
		http.Error(w, "NOT FOUND", http.StatusNotFound)
		return
	}
	if r.Method != rt.method {
		http.Error(w, "METHOD NOT ALLOWED", http.StatusMethodNotAllowed)
		return
	}
	switch {
	case rt.attestation && !h.attestation:
		http.Error(w, "FORBIDDEN: attestation API is disabled", http.StatusForbidden)
	case !rt.attestation && !h.resources:
		http.Error(w, "FORBIDDEN: resource API is disabled", http.StatusForbidden)
	case rt.serve == nil:
		h.resource(w, r, strings.TrimPrefix(p, "/cdh/resource/"))
	default:
		rt.serve(h, w, r)
	}
}

func (h *handler) fail(w http.ResponseWriter, what string, err error) {
	code := http.StatusInternalServerError
	switch {
	case errdefs.IsInvalidArgument(err):
		code = http.StatusBadRequest
	case errdefs.IsNotFound(err):
		code = http.StatusNotFound
	case errdefs.IsPermissionDenied(err):
		code = http.StatusForbidden
	}
	h.d.Log.Warn("workload API request failed", "what", what, "attest_error", err)
	http.Error(w, err.Error(), code)
}

func (h *handler) resource(w http.ResponseWriter, r *http.Request, path string) {
	parts := strings.Split(path, "/")
	if len(parts) != 3 {
		http.Error(w, "BAD REQUEST: want /cdh/resource/<repository>/<type>/<tag>", http.StatusBadRequest)
		return
	}
	res, err := kbs.NewResource(parts[0], parts[1], parts[2], r.URL.RawQuery)
	if err != nil {
		http.Error(w, "BAD REQUEST: "+err.Error(), http.StatusBadRequest)
		return
	}
	if h.d.Resources == nil {
		http.Error(w, "no KBS configured", http.StatusServiceUnavailable)
		return
	}
	b, err := h.d.Resources.Resolve(r.Context(), res.String())
	if err != nil {
		h.fail(w, "resource", err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(b)
}

func (h *handler) token(w http.ResponseWriter, r *http.Request) {
	if tt := r.URL.Query().Get("token_type"); tt != "kbs" {
		http.Error(w, fmt.Sprintf("BAD REQUEST: token_type %q (only kbs)", tt), http.StatusBadRequest)
		return
	}
	if h.d.Tokens == nil {
		http.Error(w, "no KBS configured", http.StatusServiceUnavailable)
		return
	}
	tok, err := h.d.Tokens.Token(r.Context())
	if err != nil {
		h.fail(w, "token", err)
		return
	}
	der, err := x509.MarshalPKCS8PrivateKey(h.d.Tokens.PrivateKey())
	if err != nil {
		h.fail(w, "token", err)
		return
	}
	out := map[string]string{
		"token":       tok.Raw,
		"tee_keypair": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (h *handler) evidence(w http.ResponseWriter, r *http.Request) {
	rd, ok := runtimeData(w, r)
	if !ok {
		return
	}
	if h.d.Attester == nil {
		http.Error(w, "no attester", http.StatusServiceUnavailable)
		return
	}
	ev, err := h.d.Attester.Evidence(r.Context(), rd)
	if err != nil {
		h.fail(w, "evidence", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(ev)
}

var base64URL = base64.RawURLEncoding

// Serve answers requests on l until ctx ends, then shuts down gracefully.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
