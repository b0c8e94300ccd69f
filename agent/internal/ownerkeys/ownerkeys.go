// Package ownerkeys reads the key files a workload owner hands the agent and
// cocoonctl: public keys as a PEM "PUBLIC KEY" block or the base64 of its PKIX
// DER (the form cocoon.toml carries), private keys as a PEM "PRIVATE KEY"
// (PKCS #8) block. It only decodes; which algorithms a use accepts is the
// caller's rule (exec grants sign, the sealed log agrees keys).
package ownerkeys

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParsePublic returns the key in a PEM "PUBLIC KEY" block or in the base64
// of its PKIX DER.
func ParsePublic(b []byte) (any, error) {
	der, err := publicDER(b)
	if err != nil {
		return nil, err
	}
	return x509.ParsePKIXPublicKey(der)
}

// ParsePrivatePEM returns the key in a PEM "PRIVATE KEY" (PKCS #8) block.
func ParsePrivatePEM(b []byte) (any, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("want a PEM PRIVATE KEY block")
	}
	return x509.ParsePKCS8PrivateKey(blk.Bytes)
}

// publicDER accepts a PEM "PUBLIC KEY" block or the base64 of its DER.
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
