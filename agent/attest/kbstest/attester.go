package kbstest

import (
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
