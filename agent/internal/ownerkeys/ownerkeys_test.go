package ownerkeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
)

func testKey(t testing.TB) (pubDER, privDER []byte, pub ed25519.PublicKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if pubDER, err = x509.MarshalPKIXPublicKey(pub); err != nil {
		t.Fatal(err)
	}
	if privDER, err = x509.MarshalPKCS8PrivateKey(priv); err != nil {
		t.Fatal(err)
	}
	return pubDER, privDER, pub
}

func TestParsePublic(t *testing.T) {
	pubDER, _, want := testKey(t)
	for _, tc := range []struct {
		name, in, err string
	}{
		{"pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})), ""},
		{"base64 with spaces", " " + base64.StdEncoding.EncodeToString(pubDER) + "\n", ""},
		{"wrong block", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pubDER})), `PEM block "CERTIFICATE", want PUBLIC KEY`},
		{"not base64", "!!", "want a PEM PUBLIC KEY block or base64 PKIX DER"},
		{"not pkix", base64.StdEncoding.EncodeToString([]byte("junk")), "asn1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParsePublic([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := k.(ed25519.PublicKey); !ok || !got.Equal(want) {
				t.Fatalf("key = %T %v, want the generated one", k, k)
			}
		})
	}
}

func TestParsePrivatePEM(t *testing.T) {
	pubDER, privDER, want := testKey(t)
	k, err := ParsePrivatePEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := k.(ed25519.PrivateKey); !ok || !want.Equal(got.Public()) {
		t.Fatalf("key = %T, want the generated Ed25519 key", k)
	}
	for name, in := range map[string][]byte{
		"public block": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
		"base64":       []byte(base64.StdEncoding.EncodeToString(privDER)),
		"not pkcs8":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}),
	} {
		if _, err := ParsePrivatePEM(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	pubDER, privDER, _ := testKey(f)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	f.Add([]byte(base64.StdEncoding.EncodeToString(pubDER)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParsePublic(b); (k == nil) == (err == nil) {
			t.Fatalf("ParsePublic: key %v with error %v", k, err)
		}
		if k, err := ParsePrivatePEM(b); (k == nil) == (err == nil) {
			t.Fatalf("ParsePrivatePEM: key %v with error %v", k, err)
		}
	})
}
