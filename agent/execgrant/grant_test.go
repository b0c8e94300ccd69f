package execgrant

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// ownerKey is a fixed Ed25519 key so the golden token below is stable
// (Ed25519 signatures are deterministic).
func ownerKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("cocoon execgrant test owner key"))
	return ed25519.NewKeyFromSeed(seed[:])
}

var now = time.Unix(1_750_000_000, 0)

func testGrant() Grant {
	return Grant{
		Version: 1, Pod: "default/web", Container: "app",
		Argv:     []string{"sh", "-c", "cat /etc/hostname"},
		IssuedAt: now.Unix(), Expires: now.Add(5 * time.Minute).Unix(),
		Nonce: base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef")),
	}
}

var target = Target{Pods: []string{"sandbox-1234", "default/web"}, Container: "app"}

// goldenToken is testGrant signed by ownerKey. It pins the format: a
// change to the encoding or the signed message breaks it.
const goldenToken = "cocoon-grant-v1.eyJ2IjoxLCJwb2QiOiJkZWZhdWx0L3dlYiIsImN0ciI6ImFwcCIsImFyZ3YiOlsic2giLCItYyIsImNhdCAvZXRjL2hvc3RuYW1lIl0sImlhdCI6MTc1MDAwMDAwMCwiZXhwIjoxNzUwMDAwMzAwLCJub25jZSI6Ik1ERXlNelExTmpjNE9XRmlZMlJsWmcifQ.EgC04DVdEoAumzYgkbDQ-9KYig_nyZmEC009vddS2ZC2zsTiHCBOX0Ja3_xyM6ZW80IIe8iXf9jm-V0P1e-SAA"

// goldenPayload is the JSON inside goldenToken, written out by hand.
const goldenPayload = `{"v":1,"pod":"default/web","ctr":"app","argv":["sh","-c","cat /etc/hostname"],"iat":1750000000,"exp":1750000300,"nonce":"MDEyMzQ1Njc4OWFiY2RlZg"}`

func TestGolden(t *testing.T) {
	// The vector checked without this package's code: prefix, base64url
	// payload, and an Ed25519 signature over the context string and it.
	rest, _ := strings.CutPrefix(goldenToken, "cocoon-grant-v1.")
	p, s, _ := strings.Cut(rest, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(p)
	sig, _ := base64.RawURLEncoding.DecodeString(s)
	if string(payload) != goldenPayload {
		t.Fatalf("payload = %s", payload)
	}
	if !ed25519.Verify(ownerKey().Public().(ed25519.PublicKey), append([]byte("cocoon exec grant v1\x00"), payload...), sig) {
		t.Fatal("golden signature does not verify")
	}
	tok, err := Sign(ownerKey(), testGrant())
	if err != nil {
		t.Fatal(err)
	}
	if tok != goldenToken {
		t.Fatalf("token changed:\n got %s\nwant %s", tok, goldenToken)
	}
	g, err := Verify(goldenToken, []crypto.PublicKey{ownerKey().Public()}, now, target)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.Argv, testGrant().Argv) || g.Nonce != testGrant().Nonce || g.Pod != "default/web" {
		t.Fatalf("grant = %+v", g)
	}
}

func TestRoundTripP256WithSealKey(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(eph.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	g := testGrant()
	g.SealKey = base64.RawURLEncoding.EncodeToString(der)
	tok, err := Sign(k, g)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(tok, []crypto.PublicKey{ownerKey().Public(), &k.PublicKey}, now, Target{Pods: []string{"default/web"}, Container: "app"})
	if err != nil {
		t.Fatal(err)
	}
	sk, err := got.ParseSealKey()
	if err != nil || sk == nil || !sk.Equal(eph.PublicKey()) {
		t.Fatalf("seal key = %v, %v", sk, err)
	}
	// SetSealKey writes the same form.
	var set Grant
	if err := set.SetSealKey(eph.PublicKey()); err != nil || set.SealKey != g.SealKey {
		t.Fatalf("SetSealKey = %q, %v; want %q", set.SealKey, err, g.SealKey)
	}
}

// TestRefusals covers every reason a token is refused, each with its own
// sentinel and errdefs class.
func TestRefusals(t *testing.T) {
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	trusted := []crypto.PublicKey{ownerKey().Public()}
	sign := func(k crypto.Signer, mut func(*Grant)) string {
		g := testGrant()
		if mut != nil {
			mut(&g)
		}
		tok, err := Sign(k, g)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// A token whose argv was changed after signing.
	payload, sig, _ := split(goldenToken)
	changed := strings.Replace(string(payload), "cat /etc/hostname", "cat /etc/shadow00", 1)
	changedArgv := Prefix + base64.RawURLEncoding.EncodeToString([]byte(changed)) + "." + base64.RawURLEncoding.EncodeToString(sig)

	cases := []struct {
		name    string
		token   string
		trusted []crypto.PublicKey
		at      time.Time
		target  Target
		want    error
		class   error
	}{
		{"another key", sign(otherPriv, nil), trusted, now, target, ErrBadSignature, errdefs.ErrPermissionDenied},
		{"no trusted key", goldenToken, nil, now, target, ErrBadSignature, errdefs.ErrPermissionDenied},
		{"changed argv", changedArgv, trusted, now, target, ErrBadSignature, errdefs.ErrPermissionDenied},
		{"expired", goldenToken, trusted, now.Add(5 * time.Minute), target, ErrExpired, errdefs.ErrPermissionDenied},
		{"from the future", goldenToken, trusted, now.Add(-2 * time.Minute), target, ErrNotYetValid, errdefs.ErrPermissionDenied},
		{"wrong pod", goldenToken, trusted, now, Target{Pods: []string{"default/db", "sandbox-9"}, Container: "app"}, ErrWrongPod, errdefs.ErrPermissionDenied},
		{"empty pod names", goldenToken, trusted, now, Target{Pods: []string{""}, Container: "app"}, ErrWrongPod, errdefs.ErrPermissionDenied},
		{"wrong container", goldenToken, trusted, now, Target{Pods: []string{"default/web"}, Container: "sidecar"}, ErrWrongContainer, errdefs.ErrPermissionDenied},
		{"not a token", "sh", trusted, now, target, ErrMalformed, errdefs.ErrInvalidArgument},
		{"three parts", goldenToken + ".x", trusted, now, target, ErrMalformed, errdefs.ErrInvalidArgument},
		{"padded base64", strings.Replace(goldenToken, ".EgC0", "=.EgC0", 1), trusted, now, target, ErrMalformed, errdefs.ErrInvalidArgument},
		{"too long", Prefix + strings.Repeat("A", MaxToken), trusted, now, target, ErrMalformed, errdefs.ErrInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := Verify(c.token, c.trusted, c.at, c.target)
			if !errors.Is(err, c.want) || !errors.Is(err, c.class) {
				t.Fatalf("Verify = %+v, %v; want %v (%v)", g, err, c.want, c.class)
			}
		})
	}
}

// TestSignedButMalformed: a signature does not make bad claims acceptable.
func TestSignedButMalformed(t *testing.T) {
	k := ownerKey()
	cases := map[string]string{
		"unknown field":   `{"v":1,"pod":"p","ctr":"c","argv":["x"],"iat":1,"exp":2,"nonce":"MDEyMzQ1Njc4OWFiY2RlZg","env":["LD_PRELOAD=x"]}`,
		"version":         `{"v":2,"pod":"p","ctr":"c","argv":["x"],"iat":1,"exp":2,"nonce":"MDEyMzQ1Njc4OWFiY2RlZg"}`,
		"no argv":         `{"v":1,"pod":"p","ctr":"c","argv":[],"iat":1,"exp":2,"nonce":"MDEyMzQ1Njc4OWFiY2RlZg"}`,
		"short nonce":     `{"v":1,"pod":"p","ctr":"c","argv":["x"],"iat":1,"exp":2,"nonce":"MDEy"}`,
		"too long-lived":  `{"v":1,"pod":"p","ctr":"c","argv":["x"],"iat":1,"exp":90000,"nonce":"MDEyMzQ1Njc4OWFiY2RlZg"}`,
		"NUL in argv":     `{"v":1,"pod":"p","ctr":"c","argv":["x\u0000y"],"iat":1,"exp":2,"nonce":"MDEyMzQ1Njc4OWFiY2RlZg"}`,
		"trailing data":   `{"v":1,"pod":"p","ctr":"c","argv":["x"],"iat":1,"exp":2,"nonce":"MDEyMzQ1Njc4OWFiY2RlZg"} {}`,
		"bad seal key":    `{"v":1,"pod":"p","ctr":"c","argv":["x"],"iat":1,"exp":2,"nonce":"MDEyMzQ1Njc4OWFiY2RlZg","seal":"AAAA"}`,
		"exp before iat":  `{"v":1,"pod":"p","ctr":"c","argv":["x"],"iat":5,"exp":2,"nonce":"MDEyMzQ1Njc4OWFiY2RlZg"}`,
		"not json at all": `hello`,
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			sig := ed25519.Sign(k, signedMessage([]byte(payload)))
			tok := Prefix + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(sig)
			_, err := Verify(tok, []crypto.PublicKey{k.Public()}, time.Unix(1, 0), Target{Pods: []string{"p"}, Container: "c"})
			if !errors.Is(err, ErrMalformed) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Verify = %v, want malformed", err)
			}
		})
	}
}

func TestSignRefusesBadGrant(t *testing.T) {
	g := testGrant()
	g.Argv = nil
	if _, err := Sign(ownerKey(), g); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Sign = %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := Sign(p384, testGrant()); err == nil {
		t.Fatal("Sign accepted a P-384 key")
	}
}

func TestKeysPEM(t *testing.T) {
	k := ownerKey()
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	priv, err := ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	pder, _ := x509.MarshalPKIXPublicKey(k.Public())
	pub, err := ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}))
	if err != nil {
		t.Fatal(err)
	}
	if b64, err := ParsePublicKey([]byte(base64.StdEncoding.EncodeToString(pder))); err != nil || !b64.(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("base64 DER: %v", err)
	}
	tok, _ := Sign(priv, testGrant())
	if _, err := Verify(tok, []crypto.PublicKey{pub}, now, target); err != nil {
		t.Fatal(err)
	}
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	xder, _ := x509.MarshalPKIXPublicKey(x.PublicKey())
	if _, err := ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: xder})); err == nil {
		t.Fatal("an X25519 key was accepted as a signing key")
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(goldenToken)
	f.Add(Prefix + "e30.")
	f.Add(Prefix + ".")
	f.Add("sh")
	pub := ownerKey().Public()
	f.Fuzz(func(t *testing.T, tok string) {
		g, err := Verify(tok, []crypto.PublicKey{pub}, now, target)
		if err == nil && tok != goldenToken {
			// Only the owner's signature verifies; a fuzzer cannot forge one.
			t.Fatalf("forged token accepted: %q %+v", tok, g)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrPermissionDenied) {
			t.Fatalf("error without a class: %v", err)
		}
		_, _ = Parse(tok)
	})
}
