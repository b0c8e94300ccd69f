package attest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// Sample is the development attester: its "evidence" is unsigned and proves
// nothing. Trustee's sample verifier accepts it; production KBS policies do
// not. It exists so the whole flow can run on machines without a TEE.
type Sample struct{}

// SampleEvidence is the sample attester's evidence.
type SampleEvidence struct {
	SVN string `json:"svn"`
	// ReportData is standard base64 of the report data exactly as given
	// (not padded to 64 bytes), which is what Trustee compares against.
	ReportData string `json:"report_data"`
}

// Tee implements Attester.
func (Sample) Tee() string { return TeeSample }

// Evidence implements Attester.
func (Sample) Evidence(_ context.Context, reportData []byte) (json.RawMessage, error) {
	if len(reportData) > MaxReportData {
		return nil, fmt.Errorf("report data is %d bytes, at most %d allowed", len(reportData), MaxReportData)
	}
	return json.Marshal(SampleEvidence{SVN: "1", ReportData: base64.StdEncoding.EncodeToString(reportData)})
}
