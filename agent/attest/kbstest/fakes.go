package kbstest

import (
	"crypto/ecdsa"
	"crypto/sha512"
	"errors"
	"math/big"

	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/cocoon-tee/cocoon/agent/attest"

	sevabi "github.com/google/go-sev-guest/abi"
	labi "github.com/google/go-sev-guest/client/linuxabi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sevtest "github.com/google/go-sev-guest/testing"
	tdxdata "github.com/google/go-tdx-guest/testing/testdata"
)

// FakeSNP stands in for /dev/sev-guest on machines without SEV-SNP. It wraps
// go-sev-guest's fake device, which signs real-format reports with a
// test-only AMD key chain (ARK → ASK → VCEK); FakeSNP programs it to answer
// any report data and to carry a chosen HOST_DATA. It is hardware fake only:
// everything above the ioctl runs for real.
type FakeSNP struct {
	mu       sync.Mutex
	dev      *sevtest.Device
	hostData [32]byte
}

// NewFakeSNP returns a fake SNP guest device whose reports carry hostData
// (zero-padded or truncated to 32 bytes, as the host would set it).
func NewFakeSNP(hostData []byte) (*FakeSNP, error) {
	dev, err := sevtest.TcDevice(nil, &sevtest.DeviceOptions{Now: time.Now(), Product: sevabi.DefaultSevProduct()})
	if err != nil {
		return nil, fmt.Errorf("fake sev-guest: %w", err)
	}
	f := &FakeSNP{dev: dev}
	copy(f.hostData[:], hostData)
	return f, nil
}

// Open implements client.Device; the fake is shared, so opening is a no-op.
func (f *FakeSNP) Open(string) error { return nil }

// Close implements client.Device.
func (f *FakeSNP) Close() error { return nil }

// Product implements client.Device.
func (f *FakeSNP) Product() *spb.SevProduct { return f.dev.Product() }

// Ioctl implements client.Device: it programs a report for the requested
// report data, then lets the go-sev-guest fake sign it.
func (f *FakeSNP) Ioctl(command uintptr, req any) (uintptr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := req.(*labi.SnpUserGuestRequest); ok {
		var rd []byte
		switch q := r.ReqData.(type) {
		case *labi.SnpExtendedReportReq:
			rd = q.Data.ReportData[:]
		case *labi.SnpReportReqABI:
			rd = q.ReportData[:]
		}
		if rd != nil {
			raw := sevtest.CreateRawReport(&sevtest.TestReportOptions{ReportData: rd})
			copy(raw[0xC0:0xE0], f.hostData[:])
			f.dev.ReportDataRsp[hex.EncodeToString(rd)] = &sevtest.GetReportResponse{Resp: labi.SnpReportRespABI{Data: raw}}
		}
	}
	return f.dev.Ioctl(command, req)
}

// ARK is the fake chain's root, which a verifier must be told to trust.
func (f *FakeSNP) ARK() *x509.Certificate { return f.dev.Signer.Ark }

// CannedTDXQuote returns go-tdx-guest's recorded production TDX quote. Its
// report data is fixed, so it cannot bind a fresh nonce: verifiers given it
// can check its structure only.
func CannedTDXQuote() []byte { return append([]byte(nil), tdxdata.RawQuote...) }

// VerifySNP checks an SNP report as Trustee's verifier would with a pinned
// root: the report's ECDSA P-384 signature against the VCEK from the
// evidence, and VCEK ← ASK ← ARK, where ark is the trusted root.
func VerifySNP(p *attest.ParsedSNP, ark *x509.Certificate) error {
	vcek, err := x509.ParseCertificate(p.Certs["VCEK"])
	if err != nil {
		return fmt.Errorf("VCEK: %w", err)
	}
	ask, err := x509.ParseCertificate(p.Certs["ASK"])
	if err != nil {
		return fmt.Errorf("ASK: %w", err)
	}
	if err := ask.CheckSignatureFrom(ark); err != nil {
		return fmt.Errorf("ASK not signed by the trusted ARK: %w", err)
	}
	if err := vcek.CheckSignatureFrom(ask); err != nil {
		return fmt.Errorf("VCEK not signed by ASK: %w", err)
	}
	pub, ok := vcek.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return errors.New("VCEK key is not ECDSA")
	}
	le := func(b []byte) *big.Int {
		r := make([]byte, len(b))
		for i := range b {
			r[len(b)-1-i] = b[i]
		}
		return new(big.Int).SetBytes(r)
	}
	r, s := le(p.Raw[0x2A0:0x2E8]), le(p.Raw[0x2E8:0x330])
	h := sha512.Sum384(p.Raw[:attest.SNPSignedSize])
	if !ecdsa.Verify(pub, h[:], r, s) {
		return errors.New("report signature does not verify with the VCEK")
	}
	return nil
}

// SetHostData changes the HOST_DATA of later reports (the host sets it at
// launch; tests set it once the initdata is known).
func (f *FakeSNP) SetHostData(hostData []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hostData = [32]byte{}
	copy(f.hostData[:], hostData)
}
