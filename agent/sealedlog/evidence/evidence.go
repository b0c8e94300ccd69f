// Package evidence is what sealed-log headers and encrypted exec sessions
// share to bind sealed streams to the TEE: making the attester's evidence
// for some report data in a form small enough to travel in a text line,
// and checking evidence against the report data it must carry. Both the
// owner's log opener (agent/sealedlog) and the exec session check
// (agent/execgrant) check evidence with Check, so the two cannot drift.
//
// Check parses the evidence with the parsers of agent/attest (which the
// KBS test double and `cocoonctl audit` use) and compares its report
// data. It does not verify a TDX quote's or SNP report's signature,
// certificate chain or TCB, nor the measurements: that is an attestation
// service's job.
package evidence

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cocoon-tee/cocoon/agent/attest"
)

// Errors of Check; the callers wrap them with their own context.
var (
	// ErrSample: the evidence is the development attester's, which any
	// host can make, and the caller did not allow it.
	ErrSample = errors.New("the evidence is the sample attester's (no TEE): it authenticates nothing")
	// ErrUnknownTee: the evidence names a TEE this package does not know.
	ErrUnknownTee = errors.New("unknown tee")
	// ErrMalformed: the evidence does not parse as the named TEE's.
	ErrMalformed = errors.New("the evidence does not parse")
	// ErrReportData: well-formed evidence carrying other report data.
	ErrReportData = errors.New("the evidence carries other report data")
)

// Known reports whether tee names an attester whose evidence Check reads.
func Known(tee string) bool {
	switch tee {
	case attest.TeeTDX, attest.TeeSNP, attest.TeeSample:
		return true
	}
	return false
}

// Options say what Make leaves out.
type Options struct {
	// NoCertChain leaves an SNP report's certificate chain out (about
	// 30 KiB, more than a log line carries). The verifier fetches the
	// VCEK for the report's chip id and TCB from AMD's key service.
	NoCertChain bool
}

// Make asks a for evidence over reportData and drops what does not
// belong in a text line: a TDX event log (it grows with the pod's life;
// `cocoonctl audit --evidence` is where logs are replayed) and, with
// NoCertChain, an SNP certificate chain.
func Make(ctx context.Context, a attest.Attester, reportData []byte, o Options) (json.RawMessage, error) {
	ev, err := a.Evidence(ctx, reportData)
	if err != nil {
		return nil, err
	}
	switch {
	case a.Tee() == attest.TeeTDX:
		p, err := attest.ParseTDXEvidence(ev)
		if err != nil {
			return nil, err
		}
		return json.Marshal(attest.TDXEvidence{Quote: base64.StdEncoding.EncodeToString(p.Quote)})
	case a.Tee() == attest.TeeSNP && o.NoCertChain:
		var s attest.SNPEvidence
		if err := json.Unmarshal(ev, &s); err != nil {
			return nil, fmt.Errorf("snp evidence: %w", err)
		}
		s.CertChain = nil
		return json.Marshal(s)
	}
	return ev, nil
}

// ReportData parses ev as tee's evidence and returns its report data.
func ReportData(tee string, ev json.RawMessage) ([]byte, error) {
	switch tee {
	case attest.TeeSample:
		_, rd, err := attest.ParseSampleEvidence(ev)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return rd, nil
	case attest.TeeTDX:
		p, err := attest.ParseTDXEvidence(ev)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return p.Body.GetReportData(), nil
	case attest.TeeSNP:
		p, err := attest.ParseSNPEvidence(ev)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return attest.Bytes(p.Report.ReportData), nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownTee, tee)
}

// Check checks that ev parses as tee's evidence and carries want as its
// report data. Sample evidence fails with ErrSample unless allowSample.
func Check(tee string, ev json.RawMessage, want []byte, allowSample bool) error {
	if tee == attest.TeeSample && !allowSample {
		return ErrSample
	}
	got, err := ReportData(tee, ev)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: its %s report data is %d bytes that differ from the expected digest", ErrReportData, tee, len(got))
	}
	return nil
}

// IsObject reports whether raw is a JSON object, as evidence must be.
func IsObject(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '{'
}
