// Package execgrant is the owner-signed exec grant: a short printable token
// that names one pod, one container, the exact argv to run, an expiry and a
// one-time nonce, signed by a key the pod's owner put in initdata. The host
// carries the token through `kubectl exec POD -c C -- cocoon-exec TOKEN`; the
// agent verifies it and runs the granted argv instead of the one the host
// sent, so the host can neither choose the command nor change it.
//
// The token is "cocoon-grant-v1." + base64url(payload) + "." +
// base64url(signature), with base64url unpadded. The payload is a JSON object
// (see Grant); the signature covers SigContext followed by the payload bytes
// exactly as carried, so nothing is re-encoded before it is checked. Keys are
// Ed25519, or ECDSA P-256 with a 64-byte r||s signature over SHA-256.
package execgrant

import (
	"crypto"
	"crypto/ecdh"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"time"
)

const (
	// Prefix starts every token.
	Prefix = "cocoon-grant-v1."
	// SigContext separates exec-grant signatures from anything else the
	// owner's key might sign.
	SigContext = "cocoon exec grant v1\x00"
	// Command is the argv[0] the owner asks kubectl to run; the agent
	// recognises it and looks for the token in argv[1].
	Command = "cocoon-exec"
	// MaxToken bounds a token before anything is decoded.
	MaxToken = 64 << 10
	// MaxLifetime bounds expiry minus issue time. The agent keeps each
	// used nonce until its grant expires, so this bounds that state.
	MaxLifetime = 24 * time.Hour
	// ClockSkew is how far in the future a grant's issue time may be.
	ClockSkew = time.Minute
	// NonceSize is the number of random bytes in a nonce.
	NonceSize = 16
)

// Grant is what a token grants. JSON field names are short because the
// token travels in argv.
type Grant struct {
	// Version is 1.
	Version int `json:"v"`
	// Pod is the pod the grant is for: "namespace/name", or the sandbox id.
	Pod string `json:"pod"`
	// Container is the Kubernetes container name (kubectl exec -c).
	Container string `json:"ctr"`
	// Argv is the exact command line to run.
	Argv []string `json:"argv"`
	// IssuedAt and Expires are Unix seconds.
	IssuedAt int64 `json:"iat"`
	Expires  int64 `json:"exp"`
	// Nonce is NonceSize random bytes, base64url; the agent accepts each
	// nonce once per sandbox.
	Nonce string `json:"nonce"`
	// SealKey, when set, is the owner's ephemeral public key (base64url
	// PKIX DER, X25519 or P-256) the exec's stdio is encrypted to
	// end to end.
	SealKey string `json:"seal,omitempty"`
}

// SetSealKey sets the grant's end-to-end key (SealKey) to pub, the
// owner's ephemeral X25519 or P-256 public key, in the form ParseSealKey
// reads.
func (g *Grant) SetSealKey(pub crypto.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("seal key: %w", err)
	}
	g.SealKey = base64.RawURLEncoding.EncodeToString(der)
	return nil
}

// ParseSealKey returns the grant's end-to-end key, or nil when it has none.
func (g *Grant) ParseSealKey() (*ecdh.PublicKey, error) {
	if g.SealKey == "" {
		return nil, nil
	}
	der, err := base64.RawURLEncoding.DecodeString(g.SealKey)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	k, err := ecdhKey(pub)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return k, nil
}
