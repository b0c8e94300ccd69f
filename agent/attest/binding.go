package attest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
)

// NewHash returns the hash named by an initdata "algorithm" or a KBS
// "selected-hash-algorithm" (sha256, sha384, sha512).
func NewHash(name string) (hash.Hash, error) {
	switch name {
	case "sha256", "SHA256", "Sha256":
		return sha256.New(), nil
	case "sha384", "SHA384", "Sha384":
		return sha512.New384(), nil
	case "sha512", "SHA512", "Sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unsupported hash algorithm %q (want sha256, sha384 or sha512)", name)
}

// Digest hashes data with the named algorithm.
func Digest(name string, data []byte) ([]byte, error) {
	h, err := NewHash(name)
	if err != nil {
		return nil, err
	}
	h.Write(data)
	return h.Sum(nil), nil
}

// CheckInitdata verifies that the initdata the agent was given is the one the
// host measured into the TEE at launch: TDX MRCONFIGID (48 bytes) or SNP
// HOST_DATA (32 bytes) must equal the digest, zero-padded or truncated to the
// register's size. rawTOML, when not nil, must hash to digest.
//
// The agent calls this before it serves anything; a mismatch means the host
// swapped the policy or KBS configuration, and the agent must not run.
// The sample attester has no such register and binds nothing.
func CheckInitdata(ctx context.Context, a Attester, algorithm string, digest, rawTOML []byte) error {
	if rawTOML != nil {
		d, err := Digest(algorithm, rawTOML)
		if err != nil {
			return fmt.Errorf("initdata: %w", err)
		}
		if !bytes.Equal(d, digest) {
			return fmt.Errorf("initdata: digest %s does not match the %s of the initdata document (%s)",
				hex.EncodeToString(digest), algorithm, hex.EncodeToString(d))
		}
	}
	b, ok := a.(InitdataBinder)
	if !ok {
		return nil
	}
	reg, err := b.InitdataRegister(ctx)
	if err != nil {
		return fmt.Errorf("initdata: read %s launch register: %w", a.Tee(), err)
	}
	if len(reg) == 0 {
		return fmt.Errorf("initdata: %s launch register is empty", a.Tee())
	}
	want := make([]byte, len(reg))
	copy(want, digest)
	if !bytes.Equal(want, reg) {
		name := "HOST_DATA"
		if a.Tee() == TeeTDX {
			name = "MRCONFIGID"
		}
		return fmt.Errorf("initdata: %s %s is %s, but the initdata %s digest is %s: refusing to run with initdata the host did not measure",
			a.Tee(), name, hex.EncodeToString(reg), algorithm, hex.EncodeToString(want))
	}
	return nil
}
