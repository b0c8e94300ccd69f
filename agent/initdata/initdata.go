// Package initdata reads and writes CoCo initdata: the TOML document the
// host hands a confidential pod at boot (policy, attestation and data-hub
// configuration) whose digest the TEE binds into its evidence. It owns the
// TOML format, the digest, the block-device image Kata attaches to the VM,
// the pod annotation encoding, and finding the device in the guest.
package initdata

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"sort"

	"github.com/BurntSushi/toml"
)

// Version is the only initdata version defined so far.
const Version = "0.1.0"

// Keys of the data table the agent and guest components consume.
const (
	KeyPolicy = "policy.rego"
	KeyAA     = "aa.toml"
	KeyCDH    = "cdh.toml"
)

// MaxTOML bounds the decompressed document; a generated policy for a large
// pod is well below it.
const MaxTOML = 16 << 20

// Initdata is one parsed initdata document. Raw holds the exact bytes the
// digest covers; attestation binds Digest and may send Raw to a verifier.
type Initdata struct {
	Version   string
	Algorithm string
	Data      map[string]string
	Raw       []byte
	Digest    []byte
}

// DigestHex is the digest in hex.
func (d *Initdata) DigestHex() string { return hex.EncodeToString(d.Digest) }

// Policy returns the policy.rego entry, if any.
func (d *Initdata) Policy() (string, bool) {
	p, ok := d.Data[KeyPolicy]
	return p, ok
}

// Keys returns the data keys in sorted order.
func (d *Initdata) Keys() []string {
	keys := make([]string, 0, len(d.Data))
	for k := range d.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Bound returns the digest resized to n bytes the way TEEs carry it: zero
// padded when shorter (SNP HOST_DATA is 32 bytes, TDX MRCONFIGID 48),
// truncated when longer.
func (d *Initdata) Bound(n int) []byte {
	out := make([]byte, n)
	copy(out, d.Digest)
	return out
}

// newHash returns the hash for an initdata algorithm name.
func newHash(alg string) (hash.Hash, error) {
	switch alg {
	case "sha256":
		return sha256.New(), nil
	case "sha384":
		return sha512.New384(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unsupported initdata algorithm %q (want sha256, sha384 or sha512)", alg)
}

// document is the TOML shape.
type document struct {
	Version   *string           `toml:"version"`
	Algorithm *string           `toml:"algorithm"`
	Data      map[string]string `toml:"data"`
}

// Parse decodes an initdata TOML document and computes its digest over the
// exact bytes given.
func Parse(raw []byte) (*Initdata, error) {
	if len(raw) > MaxTOML {
		return nil, fmt.Errorf("initdata: document of %d bytes exceeds %d", len(raw), MaxTOML)
	}
	var doc document
	if _, err := toml.NewDecoder(bytes.NewReader(raw)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("initdata: invalid TOML: %w", err)
	}
	if doc.Version == nil {
		return nil, fmt.Errorf("initdata: missing version")
	}
	if *doc.Version != Version {
		return nil, fmt.Errorf("initdata: unsupported version %q (want %q)", *doc.Version, Version)
	}
	if doc.Algorithm == nil {
		return nil, fmt.Errorf("initdata: missing algorithm")
	}
	h, err := newHash(*doc.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("initdata: %w", err)
	}
	h.Write(raw)
	if doc.Data == nil {
		doc.Data = map[string]string{}
	}
	return &Initdata{
		Version:   *doc.Version,
		Algorithm: *doc.Algorithm,
		Data:      doc.Data,
		Raw:       bytes.Clone(raw),
		Digest:    h.Sum(nil),
	}, nil
}

// Digest computes the digest of raw TOML with the named algorithm without
// parsing it further.
func Digest(alg string, raw []byte) ([]byte, error) {
	h, err := newHash(alg)
	if err != nil {
		return nil, err
	}
	h.Write(raw)
	return h.Sum(nil), nil
}
