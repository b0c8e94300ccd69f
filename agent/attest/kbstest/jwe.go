package kbstest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// trusteeJWE is the resource response as Trustee serialises kbs_types'
// Response: members in this order, base64url without padding, and no "aad"
// member (trustee kbs/src/jwe/mod.rs:239-246 sets aad: None and kbs-types
// skips a None aad). It is built here by hand, not by go-jose, so the
// client is tested against Trustee's bytes rather than against the library
// it decrypts with.
type trusteeJWE struct {
	Protected    string `json:"protected"`
	EncryptedKey string `json:"encrypted_key"`
	IV           string `json:"iv"`
	Ciphertext   string `json:"ciphertext"`
	Tag          string `json:"tag"`
}

var b64 = base64.RawURLEncoding

// sealJWE encrypts data to the TEE key the token names, choosing the key
// management algorithm from the JWK's "alg" as Trustee does
// (kbs/src/jwe/mod.rs:335-358: RSA-OAEP-256, or ECDH-ES+A256KW on P-256).
func sealJWE(pub *jose.JSONWebKey, data []byte) (*trusteeJWE, error) {
	cek := make([]byte, 32)
	if _, err := rand.Read(cek); err != nil {
		return nil, err
	}
	var protected string
	var wrapped []byte
	switch k := pub.Key.(type) {
	case *rsa.PublicKey:
		if pub.Algorithm != "RSA-OAEP-256" {
			return nil, fmt.Errorf("algorithm %s is not supported", pub.Algorithm)
		}
		var err error
		if wrapped, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, k, cek, nil); err != nil {
			return nil, err
		}
		// ProtectedHeader{alg, enc} with no other fields (jwe/mod.rs:125-129).
		protected = `{"alg":"RSA-OAEP-256","enc":"A256GCM"}`
	case *ecdsa.PublicKey:
		if pub.Algorithm != "ECDH-ES+A256KW" {
			return nil, fmt.Errorf("curve %s and algorithm %s is not supported", k.Curve.Params().Name, pub.Algorithm)
		}
		recipient, err := k.ECDH()
		if err != nil || recipient.Curve() != ecdh.P256() {
			return nil, fmt.Errorf("tee-pubkey is not a P-256 key: %v", err)
		}
		eph, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		z, err := eph.ECDH(recipient)
		if err != nil {
			return nil, err
		}
		if wrapped, err = aesKeyWrap(concatKDF("ECDH-ES+A256KW", z), cek); err != nil {
			return nil, err
		}
		pt := eph.PublicKey().Bytes() // 0x04 || X || Y
		// The epk object is a serde_json map: keys sorted (jwe/mod.rs:211-225).
		protected = fmt.Sprintf(`{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}}`,
			b64.EncodeToString(pt[1:33]), b64.EncodeToString(pt[33:]))
	default:
		return nil, fmt.Errorf("unsupported tee-pubkey type %T", pub.Key)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	// The AAD is the base64url text of the protected header, the same text
	// that is sent (kbs-types ProtectedHeader::generate_aad).
	prot := b64.EncodeToString([]byte(protected))
	sealed := gcm.Seal(nil, iv, data, []byte(prot))
	ct, tag := sealed[:len(data)], sealed[len(data):]
	return &trusteeJWE{
		Protected:    prot,
		EncryptedKey: b64.EncodeToString(wrapped),
		IV:           b64.EncodeToString(iv),
		Ciphertext:   b64.EncodeToString(ct),
		Tag:          b64.EncodeToString(tag),
	}, nil
}

// concatKDF is NIST SP 800-56A's single-step KDF with SHA-256 for a 256-bit
// key, empty PartyUInfo/PartyVInfo (RFC 7518 §4.6.2): one hash round.
func concatKDF(alg string, z []byte) []byte {
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint32(nil, 1))
	h.Write(z)
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(alg))))
	h.Write([]byte(alg))
	h.Write(binary.BigEndian.AppendUint32(nil, 0))
	h.Write(binary.BigEndian.AppendUint32(nil, 0))
	h.Write(binary.BigEndian.AppendUint32(nil, 256))
	return h.Sum(nil)
}

// aesKeyWrap is RFC 3394 key wrap with the default initial value.
func aesKeyWrap(kek, key []byte) ([]byte, error) {
	if len(key)%8 != 0 || len(key) < 16 {
		return nil, errors.New("key wrap: key must be a multiple of 8 bytes, at least 16")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(key) / 8
	a := []byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}
	r := make([][]byte, n)
	for i := range r {
		r[i] = append([]byte(nil), key[i*8:i*8+8]...)
	}
	buf := make([]byte, 16)
	for j := 0; j < 6; j++ {
		for i := 0; i < n; i++ {
			copy(buf, a)
			copy(buf[8:], r[i])
			block.Encrypt(buf, buf)
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(a, binary.BigEndian.Uint64(buf[:8])^t)
			copy(r[i], buf[8:])
		}
	}
	out := append([]byte(nil), a...)
	for _, b := range r {
		out = append(out, b...)
	}
	return out, nil
}

// marshalJWE serialises the response, corrupting the ciphertext if asked.
func marshalJWE(j *trusteeJWE, tamper bool) ([]byte, error) {
	if tamper {
		ct, err := b64.DecodeString(j.Ciphertext)
		if err != nil {
			return nil, err
		}
		if len(ct) > 0 {
			ct[0] ^= 0xff
		}
		j.Ciphertext = b64.EncodeToString(ct)
	}
	return json.Marshal(j)
}
