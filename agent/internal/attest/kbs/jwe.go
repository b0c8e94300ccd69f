package kbs

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// flattenedJWE is the resource response shape; parsing it ourselves first
// gives clear errors for missing members before go-jose sees it.
type flattenedJWE struct {
	Protected    string `json:"protected"`
	EncryptedKey string `json:"encrypted_key"`
	IV           string `json:"iv"`
	Ciphertext   string `json:"ciphertext"`
	Tag          string `json:"tag"`
	AAD          string `json:"aad,omitempty"`
}

// DecryptResource opens a KBS resource response: a flattened JWE with alg
// ECDH-ES+A256KW or RSA-OAEP-256 and enc A256GCM, encrypted to key. go-jose
// authenticates the protected header as the base64url text received, which
// is what Trustee computes the AES-GCM AAD over.
func DecryptResource(body []byte, key crypto.PrivateKey) ([]byte, error) {
	var f flattenedJWE
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, fmt.Errorf("resource response is not a JWE JSON object: %w", err)
	}
	switch {
	case f.Protected == "":
		return nil, errors.New("resource JWE has no protected header")
	case f.IV == "" || f.Tag == "":
		return nil, errors.New("resource JWE has no iv or tag (A256GCM needs both)")
	case f.EncryptedKey == "":
		return nil, errors.New("resource JWE has no encrypted_key")
	}
	jwe, err := jose.ParseEncryptedJSON(string(body),
		[]jose.KeyAlgorithm{jose.ECDH_ES_A256KW, jose.RSA_OAEP_256},
		[]jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return nil, fmt.Errorf("resource JWE: %w", err)
	}
	plain, err := jwe.Decrypt(key)
	if err != nil {
		return nil, fmt.Errorf("resource JWE: decrypt: %w", err)
	}
	return plain, nil
}
