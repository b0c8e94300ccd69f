package sealedlog

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"

	"github.com/cocoon-tee/cocoon/agent/internal/ownerkeys"
)

// ParsePublicKey reads the owner's log key, X25519 or P-256: a PEM "PUBLIC
// KEY" (PKIX) block or the base64 of its DER.
func ParsePublicKey(b []byte) (*ecdh.PublicKey, error) {
	k, err := ownerkeys.ParsePublic(b)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	switch k := k.(type) {
	case *ecdh.PublicKey:
		if k.Curve() == ecdh.X25519() {
			return k, nil
		}
	case *ecdsa.PublicKey:
		// PKIX names P-256 keys the same way for signing and key
		// agreement; this one is used for key agreement.
		if k.Curve == elliptic.P256() {
			return k.ECDH()
		}
	}
	return nil, fmt.Errorf("log key: %T is not X25519 or P-256", k)
}

// ParsePrivateKeyPEM reads the owner's log private key: a PEM "PRIVATE KEY"
// (PKCS #8) holding X25519 or P-256.
func ParsePrivateKeyPEM(b []byte) (*ecdh.PrivateKey, error) {
	k, err := ownerkeys.ParsePrivatePEM(b)
	if err != nil {
		return nil, fmt.Errorf("log private key: %w", err)
	}
	switch k := k.(type) {
	case *ecdh.PrivateKey:
		if k.Curve() == ecdh.X25519() {
			return k, nil
		}
	case *ecdsa.PrivateKey:
		if k.Curve == elliptic.P256() {
			return k.ECDH()
		}
	}
	return nil, fmt.Errorf("log private key: %T is not X25519 or P-256", k)
}
