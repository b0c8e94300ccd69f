package attest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	tdxpb "github.com/google/go-tdx-guest/proto/tdx"
)

// MaxEvidenceSize bounds evidence accepted by the parsers; real evidence is
// a few KiB plus an event log.
const MaxEvidenceSize = 4 << 20

func decodeStrict(data []byte, v any) error {
	if len(data) > MaxEvidenceSize {
		return fmt.Errorf("evidence is %d bytes, limit %d", len(data), MaxEvidenceSize)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	return nil
}

// ParseSampleEvidence decodes sample evidence and returns its report data.
func ParseSampleEvidence(data []byte) (*SampleEvidence, []byte, error) {
	var ev SampleEvidence
	if err := decodeStrict(data, &ev); err != nil {
		return nil, nil, err
	}
	if ev.SVN == "" {
		return nil, nil, errors.New("sample evidence: svn is missing")
	}
	rd, err := base64.StdEncoding.DecodeString(ev.ReportData)
	if err != nil {
		return nil, nil, fmt.Errorf("sample evidence: report_data: %w", err)
	}
	return &ev, rd, nil
}

// ParsedTDX is TDX evidence with its quote decoded.
type ParsedTDX struct {
	Quote    []byte
	Body     *tdxpb.TDQuoteBody
	EventLog []byte
}

// ParseTDXEvidence decodes TDX evidence and the quote's TD report body.
func ParseTDXEvidence(data []byte) (*ParsedTDX, error) {
	var ev TDXEvidence
	if err := decodeStrict(data, &ev); err != nil {
		return nil, err
	}
	q, err := base64.StdEncoding.DecodeString(ev.Quote)
	if err != nil {
		return nil, fmt.Errorf("tdx evidence: quote: %w", err)
	}
	body, err := TDXQuoteBody(q)
	if err != nil {
		return nil, err
	}
	out := &ParsedTDX{Quote: q, Body: body}
	if ev.CCEventLog != nil {
		if out.EventLog, err = base64.StdEncoding.DecodeString(*ev.CCEventLog); err != nil {
			return nil, fmt.Errorf("tdx evidence: cc_eventlog: %w", err)
		}
	}
	return out, nil
}

// ParsedSNP is SNP evidence with the report rebuilt as bytes.
type ParsedSNP struct {
	Report *SNPReport
	Raw    []byte
	// Certs maps cert_type names ("VCEK", "ASK", ...) to DER bytes.
	Certs map[string][]byte
}

// ParseSNPEvidence decodes SNP evidence.
func ParseSNPEvidence(data []byte) (*ParsedSNP, error) {
	var ev SNPEvidence
	if err := decodeStrict(data, &ev); err != nil {
		return nil, err
	}
	raw, err := ev.AttestationReport.Raw()
	if err != nil {
		return nil, err
	}
	out := &ParsedSNP{Report: &ev.AttestationReport, Raw: raw, Certs: map[string][]byte{}}
	for i, c := range ev.CertChain {
		name, ok := c.CertType.(string)
		if !ok {
			continue // OTHER entries carry nothing a verifier needs
		}
		for j, v := range c.Data {
			if v < 0 || v > 255 {
				return nil, fmt.Errorf("snp evidence: cert_chain[%d].data[%d] = %d is not a byte", i, j, v)
			}
		}
		out.Certs[name] = Bytes(c.Data)
	}
	return out, nil
}
