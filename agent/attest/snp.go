package attest

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-configfs-tsm/report"
	sevclient "github.com/google/go-sev-guest/client"
)

// SNP attests an AMD SEV-SNP guest.
type SNP struct{ o Options }

func newSNP(o Options) *SNP { return &SNP{o: o} }

// Tee implements Attester.
func (*SNP) Tee() string { return TeeSNP }

// Evidence implements Attester: an extended report (VMPL 0) with the
// host-provided certificate chain when there is one.
func (s *SNP) Evidence(ctx context.Context, reportData []byte) (json.RawMessage, error) {
	rd, err := padReportData(reportData)
	if err != nil {
		return nil, err
	}
	raw, certs, err := s.extendedReport(rd)
	if err != nil {
		return nil, err
	}
	rep, err := SNPReportFromRaw(raw)
	if err != nil {
		return nil, err
	}
	chain, err := SNPCertChain(certs)
	if err != nil {
		return nil, err
	}
	return json.Marshal(SNPEvidence{AttestationReport: *rep, CertChain: chain})
}

func (s *SNP) extendedReport(rd [64]byte) (raw, certs []byte, err error) {
	if s.o.SEVDevice == nil {
		if tsm, ok, err := tsmClient(s.o); err != nil {
			return nil, nil, err
		} else if ok {
			resp, err := report.Get(tsm, &report.Request{
				InBlob:     rd[:],
				Privilege:  &report.Privilege{Level: 0},
				GetAuxBlob: true,
			})
			if err != nil {
				return nil, nil, fmt.Errorf("snp: configfs-tsm report: %w", err)
			}
			return resp.OutBlob, resp.AuxBlob, nil
		}
	}
	dev := s.o.SEVDevice
	if dev == nil {
		d, err := sevclient.OpenDevice()
		if err != nil {
			return nil, nil, fmt.Errorf("snp: open %s: %w", sevDevice, err)
		}
		dev = d
	} else if err := dev.Open(""); err != nil {
		return nil, nil, fmt.Errorf("snp: open device: %w", err)
	}
	defer dev.Close()
	raw, certs, err = sevclient.GetRawExtendedReportAtVmpl(dev, rd, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("snp: extended report: %w", err)
	}
	return raw, certs, nil
}

// InitdataRegister returns HOST_DATA from a fresh report.
func (s *SNP) InitdataRegister(_ context.Context) ([]byte, error) {
	raw, _, err := s.extendedReport([64]byte{})
	if err != nil {
		return nil, err
	}
	if len(raw) < SNPReportSize {
		return nil, fmt.Errorf("snp: report is %d bytes", len(raw))
	}
	return append([]byte(nil), raw[0xC0:0xE0]...), nil
}
