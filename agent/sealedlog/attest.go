package sealedlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/sealedlog/evidence"
)

// A stream header alone proves nothing about who made it: anyone holding
// the owner's public key can start a stream. So the agent attests its
// headers: once per container, before the first record, it asks the TEE
// for evidence whose report data is HeadersReportData over the digests of
// the container's stdout and stderr header lines, and each of those
// streams carries the attestation line after every copy of its header:
//
//	cocoon-sealed:v1:a:<base64url of the Attestation's JSON>
//
// One evidence per container rather than per stream halves the TEE round
// trips CreateContainer waits for (a TDX quote goes through the host's
// quoting service). The opener checks the evidence with the same code as
// the exec session check (package evidence) and reports an Attested event
// for each stream whose header it binds.

const (
	// AttestPrefix starts an attestation line.
	AttestPrefix = "cocoon-sealed:v1:a:"
	// HeadersLabel separates this report data from any other use of the
	// TEE's report data (exec sessions, KBS attestation, the workload API).
	HeadersLabel = "cocoon sealed log headers v1\x00"
	// MaxAttestLine bounds an attestation line, newline included: CRI
	// runtimes split log lines at 16 KiB, and a split line would not
	// reach the owner whole. A TDX quote makes a line of about 9 KiB, an
	// SNP report (without its certificate chain) about 3 KiB.
	MaxAttestLine = 15 << 10
	// MaxAttestHeaders bounds the header digests one attestation names.
	MaxAttestHeaders = 8
)

// Attestation is the JSON an attestation line carries.
type Attestation struct {
	// Tee names the attester: "tdx", "snp" or "sample".
	Tee string `json:"tee"`
	// Headers are base64url (unpadded) sha256 digests of the header
	// lines the evidence binds (HeaderDigest), in the agent's order.
	Headers []string `json:"headers"`
	// Evidence is the attester's evidence in Trustee's shape, without a
	// TDX event log or an SNP certificate chain.
	Evidence json.RawMessage `json:"evidence"`
}

// HeaderDigest is the digest of a sealed header line: sha256 of the line
// from its "cocoon-sealed:v1:h:" prefix to its end, without the line
// break. Text before the prefix, which openers ignore, is not included.
func HeaderDigest(line []byte) ([32]byte, bool) {
	l := bytes.TrimRight(line, "\r\n")
	i := bytes.Index(l, []byte(linePrefix))
	if i < 0 || !bytes.HasPrefix(l[i:], []byte(HeaderPrefix)) {
		return [32]byte{}, false
	}
	return sha256.Sum256(l[i:]), true
}

// HeadersReportData is the report data attesting header lines: sha512 of
// HeadersLabel, u8 count and the digests (32 bytes each). 64 bytes, the
// size of TDX and SNP report data.
func HeadersReportData(digests [][32]byte) [64]byte {
	b := append([]byte(HeadersLabel), byte(len(digests)))
	for _, d := range digests {
		b = append(b, d[:]...)
	}
	return sha512.Sum512(b)
}

// errAttestLate: evidence must come before the stream's first record,
// or the owner could read records of a stream not yet attested.
var errAttestLate = errors.New("sealedlog: attested after the stream's first record")

// Attest asks a for evidence over the header lines of sealers (one
// container's streams) and has each sealer send the attestation line after
// every copy of its header. It must be called before any of them seals a
// record.
func Attest(ctx context.Context, a attest.Attester, sealers ...*Sealer) error {
	if len(sealers) == 0 || len(sealers) > MaxAttestHeaders {
		return fmt.Errorf("sealedlog: attest %d streams, want 1 to %d", len(sealers), MaxAttestHeaders)
	}
	at := Attestation{Tee: a.Tee()}
	var ds [][32]byte
	for _, s := range sealers {
		d, _ := HeaderDigest(s.headerLine)
		ds = append(ds, d)
		at.Headers = append(at.Headers, base64.RawURLEncoding.EncodeToString(d[:]))
	}
	rd := HeadersReportData(ds)
	ev, err := evidence.Make(ctx, a, rd[:], evidence.Options{NoCertChain: true})
	if err != nil {
		return fmt.Errorf("sealedlog: evidence for the stream headers: %w", err)
	}
	at.Evidence = ev
	js, err := json.Marshal(at)
	if err != nil {
		return err
	}
	l := line(nil, AttestPrefix, js)
	if len(l) > MaxAttestLine {
		return fmt.Errorf("sealedlog: %s attestation line is %d bytes, limit %d", a.Tee(), len(l), MaxAttestLine)
	}
	for _, s := range sealers {
		if err := s.setAttestation(l); err != nil {
			return err
		}
	}
	return nil
}

// ParseAttestation decodes an attestation line strictly: the prefix,
// unpadded base64url, a JSON object with exactly the known fields, a known
// TEE, 1 to MaxAttestHeaders distinct 32-byte digests and evidence that is
// a JSON object. It returns the digests; the evidence is checked by the
// caller (CheckAttestation).
func ParseAttestation(l []byte) (*Attestation, [][32]byte, error) {
	l = bytes.TrimRight(l, "\r\n")
	if len(l)+1 > MaxAttestLine {
		return nil, nil, fmt.Errorf("attestation line of %d bytes, limit %d", len(l)+1, MaxAttestLine)
	}
	raw, err := decodeLine(l, AttestPrefix)
	if err != nil {
		return nil, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var at Attestation
	if err := dec.Decode(&at); err != nil {
		return nil, nil, fmt.Errorf("json: %w", err)
	}
	if dec.More() {
		return nil, nil, errors.New("data after the JSON object")
	}
	if !evidence.Known(at.Tee) {
		return nil, nil, fmt.Errorf("unknown tee %q", at.Tee)
	}
	if len(at.Headers) == 0 || len(at.Headers) > MaxAttestHeaders {
		return nil, nil, fmt.Errorf("%d header digests, want 1 to %d", len(at.Headers), MaxAttestHeaders)
	}
	var ds [][32]byte
	seen := map[[32]byte]bool{}
	for i, h := range at.Headers {
		d, err := base64.RawURLEncoding.Strict().DecodeString(h)
		if err != nil || len(d) != sha256.Size {
			return nil, nil, fmt.Errorf("header digest %d is not 32 bytes of base64url", i)
		}
		if seen[[32]byte(d)] {
			return nil, nil, fmt.Errorf("header digest %d repeats another", i)
		}
		seen[[32]byte(d)] = true
		ds = append(ds, [32]byte(d))
	}
	if !evidence.IsObject(at.Evidence) {
		return nil, nil, errors.New("evidence is not a JSON object")
	}
	return &at, ds, nil
}

// CheckAttestation checks that the evidence carries HeadersReportData of
// the digests. Sample evidence passes here (its report data is compared
// like any other); whether it counts is the reader's choice
// (OpenerOptions.AllowSample).
func CheckAttestation(at *Attestation, digests [][32]byte) error {
	rd := HeadersReportData(digests)
	return evidence.Check(at.Tee, at.Evidence, rd[:], true)
}
