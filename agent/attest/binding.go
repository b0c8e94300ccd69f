package attest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
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
	reg, bound, err := initdataRegister(ctx, a)
	if err != nil || !bound {
		return err
	}
	want := make([]byte, len(reg))
	copy(want, digest)
	if !bytes.Equal(want, reg) {
		return fmt.Errorf("initdata: %s %s is %s, but the initdata %s digest is %s: refusing to run with initdata the host did not measure",
			a.Tee(), RegisterName(a.Tee()), hex.EncodeToString(reg), algorithm, hex.EncodeToString(want))
	}
	return nil
}

// ErrInitdataWithheld means the TEE was launched for an initdata document
// the agent did not receive.
var ErrInitdataWithheld = errors.New("initdata withheld")

// CheckNoInitdata is the check for an agent that found no initdata: the
// TEE's initdata register must then be all zero. A non-zero register means
// the host measured some pod's initdata at launch and then kept the document
// back, so the evidence would vouch for a policy the agent is not enforcing.
// It returns an error wrapping ErrInitdataWithheld in that case.
func CheckNoInitdata(ctx context.Context, a Attester) error {
	reg, bound, err := initdataRegister(ctx, a)
	if err != nil || !bound {
		return err
	}
	if !bytes.Equal(reg, make([]byte, len(reg))) {
		return fmt.Errorf("%w: %s %s is %s, so the host launched this TEE for an initdata document, but none was attached: refusing to run under the image's default policy",
			ErrInitdataWithheld, a.Tee(), RegisterName(a.Tee()), hex.EncodeToString(reg))
	}
	return nil
}

// RegisterName is how a TEE's vendor names its initdata register.
func RegisterName(tee string) string {
	switch tee {
	case TeeTDX:
		return "MRCONFIGID"
	case TeeSNP:
		return "HOST_DATA"
	}
	return "initdata register"
}

// initdataRegister reads the attester's initdata register. bound is false
// for attesters without one (the sample attester), which bind nothing.
func initdataRegister(ctx context.Context, a Attester) (reg []byte, bound bool, err error) {
	b, ok := a.(InitdataBinder)
	if !ok {
		return nil, false, nil
	}
	reg, err = b.InitdataRegister(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("initdata: read %s %s: %w", a.Tee(), RegisterName(a.Tee()), err)
	}
	if len(reg) == 0 {
		return nil, false, fmt.Errorf("initdata: %s %s is empty", a.Tee(), RegisterName(a.Tee()))
	}
	return reg, true, nil
}
