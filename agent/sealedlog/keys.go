package sealedlog

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParsePublicKey reads the owner's log key, X25519 or P-256: a PEM "PUBLIC
// KEY" (PKIX) block or the base64 of its DER.
func ParsePublicKey(b []byte) (*ecdh.PublicKey, error) {
	der, err := publicDER(b)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
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
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("log private key: want a PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
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
