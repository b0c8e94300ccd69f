// Package testgrant makes, for tests, what the owner's `cocoonctl exec`
// makes: a signed exec grant carrying a fresh ephemeral key that the
// exec's stdio is sealed to.
package testgrant

import (
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/agent/execgrant"
)

// Pod and Container are the grant's target, the names the tests' pods use.
const (
	Pod       = "shop/web"
	Container = "app"
)

// Sealed signs with key a grant to run argv in Pod's Container, valid for
// five minutes (long enough for a VM under emulation), with a fresh X25519
// key as its seal key. It returns the token, the grant's nonce and the
// ephemeral private key the owner opens the session with.
func Sealed(tb testing.TB, key crypto.Signer, argv ...string) (tok, nonce string, eph *ecdh.PrivateKey) {
	tb.Helper()
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	g := execgrant.Grant{Version: 1, Pod: Pod, Container: Container, Argv: argv,
		IssuedAt: now.Unix(), Expires: now.Add(5 * time.Minute).Unix(), Nonce: execgrant.NewNonce()}
	if err := g.SetSealKey(eph.PublicKey()); err != nil {
		tb.Fatal(err)
	}
	tok, err = execgrant.Sign(key, g)
	if err != nil {
		tb.Fatal(err)
	}
	return tok, g.Nonce, eph
}
