package execgrant

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParsePublicKey reads an owner's exec-grant key: a PEM "PUBLIC KEY"
// (PKIX), or the base64 of its DER, holding Ed25519 or ECDSA P-256.
func ParsePublicKey(b []byte) (crypto.PublicKey, error) {
	der, err := publicDER(b)
	if err != nil {
		return nil, fmt.Errorf("exec key: %w", err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
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
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("exec signing key: want a PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
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

// publicDER accepts a PEM "PUBLIC KEY" block or the base64 of its DER, the
// form cocoon.toml carries.
func publicDER(b []byte) ([]byte, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block %q, want PUBLIC KEY", blk.Type)
		}
		return blk.Bytes, nil
	}
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, errors.New("want a PEM PUBLIC KEY block or base64 PKIX DER")
	}
	return der, nil
}
