package testregistry

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"testing"

	"github.com/containers/ocicrypt/blockcipher"
)

// Annotations of a layer encrypted for the CoCo key provider.
const (
	AnnKeyProvider = "org.opencontainers.image.enc.keys.provider.attestation-agent"
	AnnPubOpts     = "org.opencontainers.image.enc.pubopts"
)

// EncryptForKeyProvider encrypts a layer blob as ocicrypt does (AES-256-CTR
// with HMAC) and wraps its private options the way CoCo's key provider does:
// AES-256-GCM under kek, the key a KBS serves as kid. It returns the
// encrypted blob and the layer's annotations. skopeo cannot produce this
// form, so tests that need it build it here.
func EncryptForKeyProvider(t testing.TB, blob, kek []byte, kid string) ([]byte, map[string]string) {
	t.Helper()
	h, err := blockcipher.NewLayerBlockCipherHandler()
	if err != nil {
		t.Fatal(err)
	}
	encR, finish, err := h.Encrypt(bytes.NewReader(blob), blockcipher.AES256CTR)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := io.ReadAll(encR)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := finish()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := json.Marshal(opts.Private)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := json.Marshal(opts.Public)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	iv := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(iv); err != nil {
		t.Fatal(err)
	}
	packet, err := json.Marshal(map[string]string{
		"kid":          kid,
		"wrapped_data": base64.StdEncoding.EncodeToString(gcm.Seal(nil, iv, priv, nil)),
		"iv":           base64.StdEncoding.EncodeToString(iv),
		"wrap_type":    "A256GCM",
	})
	if err != nil {
		t.Fatal(err)
	}
	return enc, map[string]string{
		AnnKeyProvider: base64.StdEncoding.EncodeToString(packet),
		AnnPubOpts:     base64.StdEncoding.EncodeToString(pub),
	}
}
