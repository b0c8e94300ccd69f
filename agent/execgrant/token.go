package execgrant

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// Reasons a token is refused. Each error Verify returns wraps one of these
// and an errdefs class: a token that cannot be decoded is
// errdefs.ErrInvalidArgument, a well-formed one that does not grant this
// exec is errdefs.ErrPermissionDenied.
var (
	ErrMalformed      = errors.New("malformed exec grant")
	ErrBadSignature   = errors.New("exec grant signature does not verify under any trusted owner key")
	ErrExpired        = errors.New("exec grant expired")
	ErrNotYetValid    = errors.New("exec grant issued in the future")
	ErrWrongPod       = errors.New("exec grant is for another pod")
	ErrWrongContainer = errors.New("exec grant is for another container")
)

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %w: %s", errdefs.ErrInvalidArgument, ErrMalformed, fmt.Sprintf(format, a...))
}

func denied(reason error, format string, a ...any) error {
	return fmt.Errorf("%w: %w: %s", errdefs.ErrPermissionDenied, reason, fmt.Sprintf(format, a...))
}

// NewNonce returns a fresh random nonce in the token's encoding.
func NewNonce() string {
	b := make([]byte, NonceSize)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// Sign checks g and returns it as a token signed with key, an
// ed25519.PrivateKey or a P-256 *ecdsa.PrivateKey.
func Sign(key crypto.Signer, g Grant) (string, error) {
	if err := g.check(); err != nil {
		return "", err
	}
	payload, err := json.Marshal(g)
	if err != nil {
		return "", fmt.Errorf("exec grant: %w", err)
	}
	msg := signedMessage(payload)
	var sig []byte
	switch k := key.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, msg)
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("exec grant: ECDSA keys must be P-256")
		}
		sum := sha256.Sum256(msg)
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			return "", fmt.Errorf("exec grant: %w", err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	default:
		return "", fmt.Errorf("exec grant: unsupported signing key %T (Ed25519 or ECDSA P-256)", key)
	}
	tok := Prefix + base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(sig)
	if len(tok) > MaxToken {
		return "", fmt.Errorf("exec grant: token is %d bytes, limit %d", len(tok), MaxToken)
	}
	return tok, nil
}

func signedMessage(payload []byte) []byte {
	return append([]byte(SigContext), payload...)
}

// Target is what the agent knows about the exec it is asked to run.
type Target struct {
	// Pods are the names the pod goes by: its sandbox id and
	// "namespace/name" (from policy state). A grant naming any of them
	// matches.
	Pods []string
	// Container is the Kubernetes name of the container the exec runs in.
	Container string
}

// Parse decodes a token without checking its signature or its claims; for
// display only. Use Verify to decide.
func Parse(token string) (*Grant, error) {
	payload, _, err := split(token)
	if err != nil {
		return nil, err
	}
	return decode(payload)
}

// Verify checks token against the trusted owner keys (ed25519.PublicKey or
// P-256 *ecdsa.PublicKey) and the exec it is presented for, and returns the
// grant. The signature is checked before the payload is decoded. The
// caller still has to accept the nonce only once.
func Verify(token string, trusted []crypto.PublicKey, now time.Time, t Target) (*Grant, error) {
	payload, sig, err := split(token)
	if err != nil {
		return nil, err
	}
	if !verifySig(trusted, signedMessage(payload), sig) {
		return nil, fmt.Errorf("%w: %w (%d trusted)", errdefs.ErrPermissionDenied, ErrBadSignature, len(trusted))
	}
	g, err := decode(payload)
	if err != nil {
		return nil, err
	}
	unix := now.Unix()
	switch {
	case unix >= g.Expires:
		return nil, denied(ErrExpired, "expired at %s, now %s", fmtTime(g.Expires), fmtTime(unix))
	case g.IssuedAt > unix+int64(ClockSkew/time.Second):
		return nil, denied(ErrNotYetValid, "issued at %s, now %s", fmtTime(g.IssuedAt), fmtTime(unix))
	}
	pod := false
	for _, p := range t.Pods {
		pod = pod || (p != "" && p == g.Pod)
	}
	if !pod {
		return nil, denied(ErrWrongPod, "granted for %q, this pod is %s", g.Pod, strings.Join(quoteAll(t.Pods), " or "))
	}
	if g.Container != t.Container {
		return nil, denied(ErrWrongContainer, "granted for %q, exec is in %q", g.Container, t.Container)
	}
	return g, nil
}

func fmtTime(unix int64) string { return time.Unix(unix, 0).UTC().Format(time.RFC3339) }

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// split returns the payload and signature bytes of a token.
func split(token string) (payload, sig []byte, err error) {
	if len(token) > MaxToken {
		return nil, nil, malformed("token is %d bytes, limit %d", len(token), MaxToken)
	}
	rest, ok := strings.CutPrefix(token, Prefix)
	if !ok {
		return nil, nil, malformed("token does not start with %q", Prefix)
	}
	p, s, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(s, ".") {
		return nil, nil, malformed("token is not %s<payload>.<signature>", Prefix)
	}
	if payload, err = base64.RawURLEncoding.Strict().DecodeString(p); err != nil {
		return nil, nil, malformed("payload: %v", err)
	}
	if sig, err = base64.RawURLEncoding.Strict().DecodeString(s); err != nil {
		return nil, nil, malformed("signature: %v", err)
	}
	return payload, sig, nil
}

func verifySig(trusted []crypto.PublicKey, msg, sig []byte) bool {
	for _, k := range trusted {
		switch k := k.(type) {
		case ed25519.PublicKey:
			if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig) {
				return true
			}
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() || len(sig) != 64 {
				continue
			}
			sum := sha256.Sum256(msg)
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if ecdsa.Verify(k, sum[:], r, s) {
				return true
			}
		}
	}
	return false
}

// decode parses the payload strictly: unknown fields, trailing data and
// missing claims are malformed.
func decode(payload []byte) (*Grant, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var g Grant
	if err := dec.Decode(&g); err != nil {
		return nil, malformed("payload: %v", err)
	}
	if dec.More() {
		return nil, malformed("payload: data after the JSON object")
	}
	if err := g.check(); err != nil {
		return nil, err
	}
	return &g, nil
}

// check validates the claims' shape.
func (g *Grant) check() error {
	switch {
	case g.Version != 1:
		return malformed("version %d, want 1", g.Version)
	case g.Pod == "":
		return malformed("no pod")
	case g.Container == "":
		return malformed("no container")
	case len(g.Argv) == 0 || g.Argv[0] == "":
		return malformed("no command")
	case g.Expires <= g.IssuedAt:
		return malformed("expires before it is issued")
	case g.Expires-g.IssuedAt > int64(MaxLifetime/time.Second):
		return malformed("lifetime %ds exceeds %s", g.Expires-g.IssuedAt, MaxLifetime)
	}
	for i, a := range g.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return malformed("argv[%d] contains a NUL byte", i)
		}
	}
	n, err := base64.RawURLEncoding.Strict().DecodeString(g.Nonce)
	if err != nil || len(n) != NonceSize {
		return malformed("nonce must be %d bytes, base64url", NonceSize)
	}
	if _, err := g.ParseSealKey(); err != nil {
		return malformed("%v", err)
	}
	return nil
}

// ecdhKey turns a parsed PKIX key into a key-agreement key: X25519 as is,
// P-256 from its ECDSA form (PKIX names both by the same OID).
func ecdhKey(pub any) (*ecdh.PublicKey, error) {
	switch k := pub.(type) {
	case *ecdh.PublicKey:
		if k.Curve() != ecdh.X25519() {
			return nil, errors.New("unsupported curve")
		}
		return k, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("ECDH keys must be X25519 or P-256")
		}
		return k.ECDH()
	}
	return nil, fmt.Errorf("unsupported key type %T (X25519 or P-256)", pub)
}
