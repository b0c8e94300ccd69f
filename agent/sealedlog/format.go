// Package sealedlog seals a container's output to its owner. Each output
// stream (one container's stdout or stderr) gets its own HPKE (RFC 9180)
// context to the owner's public key; the host relays only text lines it
// cannot read, and the owner's private key recovers the bytes and detects
// any record the host dropped, replayed or reordered.
//
// Every sealed line is one text line, so kubelet's CRI log files and
// `kubectl logs` carry it unchanged:
//
//	cocoon-sealed:v1:h:<base64url header>   once per stream, repeated every HeaderEvery bytes
//	cocoon-sealed:v1:d:<base64url record>   one per chunk of output
//
// Header: kem u16 | kdf u16 | aead u16 | key id [8] | stream id [8] |
// label length u16 | label | enc length u16 | enc. The HPKE context is
// set up in base mode, export-only, with info = InfoPrefix followed by the
// header up to (not including) the enc length, so suite, key id, stream id
// and label are bound to the key. The record key and base nonce are HPKE
// exports (ExportKey, ExportNonce).
//
// Record: stream id [8] | seq u64 | flags u8 | AEAD ciphertext. The nonce is
// the base nonce XOR seq (big-endian, right-aligned) and the additional data
// is RecordAAD followed by the record's first 17 bytes, so a record decrypts
// only at its own position in its own stream. Flag 1 marks the stream's
// last record. Sequence numbers start at 0 and increase by one.
//
// The crypto is Go's standard library crypto/hpke (DHKEM X25519 or P-256
// with HKDF-SHA256) and crypto/cipher AES-256-GCM.
package sealedlog

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	// HeaderPrefix and RecordPrefix start sealed lines.
	HeaderPrefix = "cocoon-sealed:v1:h:"
	RecordPrefix = "cocoon-sealed:v1:d:"
	// linePrefix is what both share; anything before it on a line (a
	// kubectl --timestamps stamp, a CRI log prefix) is ignored.
	linePrefix = "cocoon-sealed:v1:"

	// InfoPrefix, ExportKey, ExportNonce and RecordAAD separate this
	// format's derivations from any other use of the owner's key.
	InfoPrefix  = "cocoon sealed log v1\x00"
	ExportKey   = "cocoon sealed log v1 record key"
	ExportNonce = "cocoon sealed log v1 record nonce"
	RecordAAD   = "cocoon sealed log v1 record\x00"

	// MaxRecordPlain bounds a record's plaintext. A full record's line is
	// about 11 KiB, well under the 16 KiB at which CRI runtimes split a
	// log line.
	MaxRecordPlain = 8 << 10
	// MaxLabel bounds a stream's label.
	MaxLabel = 512
	// maxLine bounds a sealed line the opener accepts.
	maxLine = 16 << 10

	kdfHKDFSHA256 = 0x0001
	aeadAES256GCM = 0x0002
	kemP256       = 0x0010
	kemX25519     = 0x0020

	idSize        = 8
	recordHdrSize = idSize + 8 + 1
	flagFinal     = 1
)

// KeyID names an owner key in headers: the first 8 bytes of the sha256 of
// its HPKE serialisation.
func KeyID(pub *ecdh.PublicKey) [idSize]byte {
	sum := sha256.Sum256(pub.Bytes())
	return [idSize]byte(sum[:idSize])
}

// header is a stream header.
type header struct {
	kem, kdf, aead uint16
	keyID, stream  [idSize]byte
	label          string
	enc            []byte
}

// bound is the part of the header that goes into the HPKE info.
func (h *header) bound() []byte {
	b := binary.BigEndian.AppendUint16(nil, h.kem)
	b = binary.BigEndian.AppendUint16(b, h.kdf)
	b = binary.BigEndian.AppendUint16(b, h.aead)
	b = append(b, h.keyID[:]...)
	b = append(b, h.stream[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.label)))
	return append(b, h.label...)
}

func (h *header) info() []byte { return append([]byte(InfoPrefix), h.bound()...) }

func (h *header) marshal() []byte {
	b := h.bound()
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.enc)))
	return append(b, h.enc...)
}

var errShort = errors.New("truncated")

func parseHeader(b []byte) (*header, error) {
	if len(b) < 6+2*idSize+2 {
		return nil, errShort
	}
	h := &header{
		kem:  binary.BigEndian.Uint16(b),
		kdf:  binary.BigEndian.Uint16(b[2:]),
		aead: binary.BigEndian.Uint16(b[4:]),
	}
	copy(h.keyID[:], b[6:])
	copy(h.stream[:], b[6+idSize:])
	b = b[6+2*idSize:]
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > MaxLabel || len(b) < n+2 {
		return nil, errShort
	}
	h.label = string(b[:n])
	b = b[n:]
	m := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) != m {
		return nil, fmt.Errorf("enc is %d bytes, header says %d", len(b), m)
	}
	h.enc = b
	if h.kdf != kdfHKDFSHA256 || h.aead != aeadAES256GCM || (h.kem != kemX25519 && h.kem != kemP256) {
		return nil, fmt.Errorf("unsupported suite kem %#04x kdf %#04x aead %#04x", h.kem, h.kdf, h.aead)
	}
	return h, nil
}

// kemFor returns the HPKE KEM id for an owner key's curve.
func kemFor(c ecdh.Curve) (uint16, error) {
	switch c {
	case ecdh.X25519():
		return kemX25519, nil
	case ecdh.P256():
		return kemP256, nil
	}
	return 0, fmt.Errorf("sealedlog: owner key curve %v: want X25519 or P-256", c)
}

// recordCipher is a stream's record AEAD and base nonce.
type recordCipher struct {
	aead cipher.AEAD
	base [12]byte
}

// exporter is what Sender and Recipient share.
type exporter interface {
	Export(exporterContext string, length int) ([]byte, error)
}

func newRecordCipher(ctx exporter) (*recordCipher, error) {
	key, err := ctx.Export(ExportKey, 32)
	if err != nil {
		return nil, err
	}
	nonce, err := ctx.Export(ExportNonce, 12)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	rc := &recordCipher{aead: a}
	copy(rc.base[:], nonce)
	return rc, nil
}

func (rc *recordCipher) nonce(seq uint64) []byte {
	n := rc.nonceFor(seq)
	return n[:]
}

func (rc *recordCipher) nonceFor(seq uint64) [12]byte {
	n := rc.base
	for i := range 8 {
		n[4+i] ^= byte(seq >> (56 - 8*i))
	}
	return n
}

func aad(rec []byte) []byte { return append([]byte(RecordAAD), rec[:recordHdrSize]...) }

// hpkeSuite returns the KDF and the export-only AEAD every stream uses.
func hpkeSuite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.ExportOnly() }
