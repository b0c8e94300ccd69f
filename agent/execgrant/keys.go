package execgrant

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"fmt"

	"github.com/cocoon-tee/cocoon/agent/internal/ownerkeys"
)

// ParsePublicKey reads an owner's exec-grant key: a PEM "PUBLIC KEY"
// (PKIX), or the base64 of its DER, holding Ed25519 or ECDSA P-256.
func ParsePublicKey(b []byte) (crypto.PublicKey, error) {
	k, err := ownerkeys.ParsePublic(b)
	if err != nil {
		return nil, fmt.Errorf("exec key: %w", err)
	}
	switch k := k.(type) {
	case ed25519.PublicKey:
		return k, nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return k, nil
		}
	}
	return nil, fmt.Errorf("exec key: %T is not Ed25519 or ECDSA P-256", k)
}

// ParsePrivateKeyPEM reads the owner's signing key: a PEM "PRIVATE KEY"
// (PKCS #8) holding Ed25519 or ECDSA P-256.
func ParsePrivateKeyPEM(b []byte) (crypto.Signer, error) {
	k, err := ownerkeys.ParsePrivatePEM(b)
	if err != nil {
		return nil, fmt.Errorf("exec signing key: %w", err)
	}
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve == elliptic.P256() {
			return k, nil
		}
	}
	return nil, fmt.Errorf("exec signing key: %T is not Ed25519 or ECDSA P-256", k)
}
