package execgrant

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/agent/sealedlog/evidence"
)

// An encrypted exec session (a grant with a seal key) is announced by the
// agent with TEE evidence, so the owner's tool knows it talks to the agent
// in the TEE and not to a host that answered `cocoon-exec` itself. The
// announcement is one line on the exec's stdout, before the sealed
// streams:
//
//	cocoon-exec-evidence:v1:<base64url of the Announcement's JSON>
//
// The evidence's report data is SessionReportData over the grant's nonce
// and the digests of the session's three sealed stream headers (the key
// stream carrying the agent's stdin key, stdout, stderr). A header holds
// the HPKE encapsulation only the agent could make records under, so
// binding the headers binds the agent's stdin key and every output byte to
// the evidence; the owner refuses any stream whose header is not bound.
// The agent's stdin key itself must stay unknown to the host (anyone who
// knows it can write stdin the agent accepts), so it is not announced in
// the clear; the report data carries only digests.

const (
	// AnnouncementPrefix starts the announcement line.
	AnnouncementPrefix = "cocoon-exec-evidence:v1:"
	// SessionLabel separates this report data from any other use of the
	// TEE's report data (KBS attestation, the workload API).
	SessionLabel = "cocoon exec session v1\x00"
	// MaxAnnouncement bounds the announcement line. The evidence is a
	// quote or report of a few KiB; the TDX event log is left out.
	MaxAnnouncement = 256 << 10
	// SessionStreams is the number of sealed streams a session has.
	SessionStreams = 3
)

// Errors of the owner's check, wrapped with the details.
var (
	// ErrNoEvidence: the session was not announced.
	ErrNoEvidence = errors.New("the agent sent no attestation evidence for this session")
	// ErrSampleEvidence: the evidence is the development attester's,
	// which any host can make.
	ErrSampleEvidence = errors.New("the evidence is the sample attester's (no TEE): it authenticates nothing")
	// ErrEvidenceMismatch: the evidence does not bind this session.
	ErrEvidenceMismatch = errors.New("the evidence does not bind this session")
	// ErrUnboundStream: a sealed stream the evidence does not name.
	ErrUnboundStream = errors.New("a sealed stream not bound to the agent's evidence")
	// ErrBadAnnouncement: the line is not a well-formed announcement.
	ErrBadAnnouncement = errors.New("malformed exec session announcement")
)

// Announcement is what the agent announces.
type Announcement struct {
	// Tee names the attester: "tdx", "snp" or "sample".
	Tee string `json:"tee"`
	// Headers are base64url (unpadded) sha256 digests of the key, stdout
	// and stderr stream headers (HeaderDigest), in that order.
	Headers []string `json:"headers"`
	// Evidence is the attester's evidence in Trustee's shape.
	Evidence json.RawMessage `json:"evidence"`
}

// HeaderDigest is the digest of a sealed header line: sha256 of the line
// from its "cocoon-sealed:v1:h:" prefix to its end, without the line
// break (sealedlog.HeaderDigest, which sealed-log attestations use too).
func HeaderDigest(line []byte) ([32]byte, bool) { return sealedlog.HeaderDigest(line) }

// SessionReportData is the report data binding a session: sha512 of
// SessionLabel, the grant's nonce (u16 length, bytes) and the header
// digests (u8 count, 32 bytes each). 64 bytes, the size of TDX and SNP
// report data.
func SessionReportData(nonce string, headers [][32]byte) [64]byte {
	b := []byte(SessionLabel)
	b = binary.BigEndian.AppendUint16(b, uint16(len(nonce)))
	b = append(b, nonce...)
	b = append(b, byte(len(headers)))
	for _, h := range headers {
		b = append(b, h[:]...)
	}
	return sha512.Sum512(b)
}

// Announce makes the announcement line (with its newline) for an agent
// session of the grant with this nonce, with evidence from a.
func Announce(ctx context.Context, a attest.Attester, nonce string, x *sealedlog.ExecAgent) ([]byte, error) {
	key, _, _ := bytes.Cut(x.Preamble, []byte("\n"))
	lines := [][]byte{key, x.Stdout.Header(), x.Stderr.Header()}
	var ds [][32]byte
	an := Announcement{Tee: a.Tee()}
	for i, l := range lines {
		d, ok := HeaderDigest(l)
		if !ok || !bytes.HasPrefix(l, []byte(sealedlog.HeaderPrefix)) {
			return nil, fmt.Errorf("exec session: stream %d does not start with its header", i)
		}
		ds = append(ds, d)
		an.Headers = append(an.Headers, base64.RawURLEncoding.EncodeToString(d[:]))
	}
	rd := SessionReportData(nonce, ds)
	ev, err := evidence.Make(ctx, a, rd[:], evidence.Options{})
	if err != nil {
		return nil, fmt.Errorf("exec session evidence: %w", err)
	}
	an.Evidence = ev
	b, err := json.Marshal(an)
	if err != nil {
		return nil, err
	}
	out := append([]byte(AnnouncementPrefix), base64.RawURLEncoding.AppendEncode(nil, b)...)
	if len(out)+1 > MaxAnnouncement {
		return nil, fmt.Errorf("exec session announcement is %d bytes, limit %d", len(out)+1, MaxAnnouncement)
	}
	return append(out, '\n'), nil
}

// IsAnnouncement reports whether a line is meant as an announcement.
func IsAnnouncement(line []byte) bool {
	return bytes.HasPrefix(line, []byte(AnnouncementPrefix))
}

// ParseAnnouncement decodes an announcement line strictly: the prefix,
// unpadded base64url, a JSON object with exactly the known fields, a known
// TEE, SessionStreams distinct 32-byte digests and evidence that is a JSON
// object. The evidence is checked by Verify.
func ParseAnnouncement(line []byte) (*Announcement, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadAnnouncement, fmt.Sprintf(format, a...))
	}
	if len(line) > MaxAnnouncement {
		return nil, bad("%d bytes, limit %d", len(line), MaxAnnouncement)
	}
	l := bytes.TrimRight(line, "\r\n")
	rest, ok := bytes.CutPrefix(l, []byte(AnnouncementPrefix))
	if !ok {
		return nil, bad("it does not start with %q", AnnouncementPrefix)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(string(rest))
	if err != nil {
		return nil, bad("base64: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var a Announcement
	if err := dec.Decode(&a); err != nil {
		return nil, bad("json: %v", err)
	}
	if dec.More() {
		return nil, bad("data after the JSON object")
	}
	if !evidence.Known(a.Tee) {
		return nil, bad("unknown tee %q", a.Tee)
	}
	if len(a.Headers) != SessionStreams {
		return nil, bad("%d header digests, want %d", len(a.Headers), SessionStreams)
	}
	seen := map[string]bool{}
	for i, h := range a.Headers {
		d, err := base64.RawURLEncoding.Strict().DecodeString(h)
		if err != nil || len(d) != sha256.Size {
			return nil, bad("header digest %d is not 32 bytes of base64url", i)
		}
		if seen[h] {
			return nil, bad("header digest %d repeats another", i)
		}
		seen[h] = true
	}
	if !evidence.IsObject(a.Evidence) {
		return nil, bad("evidence is not a JSON object")
	}
	return &a, nil
}

// digests returns the announced header digests.
func (a *Announcement) digests() [][32]byte {
	var ds [][32]byte
	for _, h := range a.Headers {
		d, _ := base64.RawURLEncoding.Strict().DecodeString(h) // ParseAnnouncement checked them
		ds = append(ds, [32]byte(d))
	}
	return ds
}

// Binds reports whether a sealed header line is one of the session's.
func (a *Announcement) Binds(headerLine []byte) bool {
	d, ok := HeaderDigest(headerLine)
	if !ok {
		return false
	}
	for _, b := range a.digests() {
		if b == d {
			return true
		}
	}
	return false
}

// Verify checks the evidence as far as this repository verifies evidence
// (the same parsers as the KBS test double and `cocoonctl audit`): it must
// parse as the announced TEE's and carry SessionReportData(nonce, the
// announced digests) as its report data. The signature of a TDX quote or
// SNP report, its certificate chain and TCB are not checked here; that is
// an attestation service's job. Sample evidence is refused unless
// allowSample.
func (a *Announcement) Verify(nonce string, allowSample bool) error {
	want := SessionReportData(nonce, a.digests())
	err := evidence.Check(a.Tee, a.Evidence, want[:], allowSample)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, evidence.ErrSample):
		return ErrSampleEvidence
	case errors.Is(err, evidence.ErrUnknownTee):
		return fmt.Errorf("%w: %w", ErrBadAnnouncement, err)
	case errors.Is(err, evidence.ErrReportData):
		return fmt.Errorf("%w: its %s report data is not the digest of this grant's nonce and the announced streams (evidence made for another session or grant)", ErrEvidenceMismatch, a.Tee)
	}
	return fmt.Errorf("%w: %w", ErrEvidenceMismatch, err)
}
