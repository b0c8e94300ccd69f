package evidence_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/sealedlog/evidence"
)

func TestCheck(t *testing.T) {
	ctx := context.Background()
	rd := bytes.Repeat([]byte{9}, 64)
	other := bytes.Repeat([]byte{8}, 64)
	snp, err := evidence.Make(ctx, kbstest.SNPAttester(t), rd, evidence.Options{NoCertChain: true})
	if err != nil {
		t.Fatal(err)
	}
	var s attest.SNPEvidence
	if err := json.Unmarshal(snp, &s); err != nil || s.CertChain != nil {
		t.Fatalf("NoCertChain kept the chain (%v)", err)
	}
	sample, _ := evidence.Make(ctx, attest.Sample{}, rd, evidence.Options{})
	for _, c := range []struct {
		name, tee   string
		ev          json.RawMessage
		want        []byte
		allowSample bool
		err         error
	}{
		{"snp", "snp", snp, rd, false, nil},
		{"snp, other report data", "snp", snp, other, false, evidence.ErrReportData},
		{"snp evidence read as tdx", "tdx", snp, rd, false, evidence.ErrMalformed},
		{"sample refused", "sample", sample, rd, false, evidence.ErrSample},
		{"sample allowed", "sample", sample, rd, true, nil},
		{"sample, other report data", "sample", sample, other, true, evidence.ErrReportData},
		{"unknown tee", "sgx", sample, rd, true, evidence.ErrUnknownTee},
		{"not evidence", "snp", json.RawMessage(`{"attestation_report":1}`), rd, false, evidence.ErrMalformed},
	} {
		err := evidence.Check(c.tee, c.ev, c.want, c.allowSample)
		if (c.err == nil) != (err == nil) || (c.err != nil && !errors.Is(err, c.err)) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
}
