package kbstest

import (
	"bytes"
	"context"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
)

// SNPAttester is an attester over go-sev-guest's fake SEV-SNP device: it
// makes real-format, signed reports carrying the report data asked for,
// for tests on machines without SNP hardware.
func SNPAttester(tb testing.TB) attest.Attester {
	tb.Helper()
	dev, err := NewFakeSNP(nil)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := attest.New(attest.Options{Root: tb.TempDir(), SEVDevice: dev})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// TDXAttester stands in for TDX hardware: go-tdx-guest's canned quote with
// the report data asked for written into its TD report body, and an event
// log of 6,000 bytes. The quote's signature no longer verifies; nothing in
// this repository checks TDX quote signatures (an attestation service
// does).
func TDXAttester(tb testing.TB) attest.Attester {
	tb.Helper()
	canned := CannedTDXQuote()
	body, err := attest.TDXQuoteBody(canned)
	if err != nil {
		tb.Fatal(err)
	}
	old := body.GetReportData()
	at := bytes.Index(canned, old)
	if at < 0 || bytes.Count(canned, old) != 1 {
		tb.Fatal("canned quote: report data not found once")
	}
	a, err := attest.New(attest.Options{Root: tb.TempDir(),
		TDXQuote: func(_ context.Context, rd [64]byte) ([]byte, error) {
			q := bytes.Clone(canned)
			copy(q[at:], rd[:])
			return q, nil
		},
		EventLog: func() ([]byte, error) { return bytes.Repeat([]byte("event "), 1000), nil },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}
