package testgrant

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"testing"
)

// Owner is a pod owner's keys: logs and encrypted exec output are sealed
// to Seal, exec grants are signed with Exec.
type Owner struct {
	Seal *ecdh.PrivateKey
	Exec ed25519.PrivateKey
}

// NewOwner makes an owner with fresh keys.
func NewOwner(tb testing.TB) Owner {
	tb.Helper()
	seal, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	_, exec, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return Owner{Seal: seal, Exec: exec}
}

// TOML is the [owner] table of cocoon.toml naming the owner's public keys
// (base64 PKIX DER), as the owner delivers it in initdata.
func (o Owner) TOML(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("[owner]\nseal_key = %q\nexec_keys = [%q]\n", pkix(tb, o.Seal.PublicKey()), pkix(tb, o.Exec.Public()))
}

func pkix(tb testing.TB, k any) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}
