package attest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
)

func TestDetect(t *testing.T) {
	root := t.TempDir()
	if got := attest.Detect(attest.Options{Root: root}); got != "" {
		t.Fatalf("empty root detected %q", got)
	}
	if _, err := attest.New(attest.Options{Root: root}); err == nil {
		t.Fatal("New without TEE and without AllowSample succeeded")
	}
	mk := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mk("dev/sev-guest")
	if got := attest.Detect(attest.Options{Root: root}); got != attest.TeeSNP {
		t.Fatalf("detected %q, want snp", got)
	}
	mk("dev/tdx_guest")
	if got := attest.Detect(attest.Options{Root: root}); got != attest.TeeTDX {
		t.Fatalf("detected %q, want tdx", got)
	}
}

func TestSampleIsExplicitOnly(t *testing.T) {
	root := t.TempDir()
	a, err := attest.New(attest.Options{Root: root, AllowSample: true})
	if err != nil || a.Tee() != attest.TeeSample {
		t.Fatalf("AllowSample: %v %v", a, err)
	}
	if _, err := attest.New(attest.Options{Root: root, AllowSample: true, Confidential: true}); err == nil ||
		!strings.Contains(err.Error(), "confidential") {
		t.Fatalf("sample in confidential mode: %v", err)
	}
	if _, err := attest.New(attest.Options{Root: root, Tee: "sample"}); err == nil {
		t.Fatal("forced sample without AllowSample succeeded")
	}
}

func TestSampleEvidence(t *testing.T) {
	rd := sha512.Sum384([]byte("runtime data"))
	ev, err := attest.Sample{}.Evidence(context.Background(), rd[:])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(ev, &m); err != nil {
		t.Fatal(err)
	}
	// Trustee compares the unpadded digest, so no zero padding to 64 bytes.
	if m["svn"] != "1" || m["report_data"] != base64.StdEncoding.EncodeToString(rd[:]) {
		t.Fatalf("evidence %s", ev)
	}
	if _, err := (attest.Sample{}).Evidence(context.Background(), make([]byte, 65)); err == nil {
		t.Fatal("65-byte report data accepted")
	}
}

// The SNP device is go-sev-guest's fake (no SEV-SNP hardware here): it signs
// real-format reports with a test-only AMD chain.
func TestSNPEvidence(t *testing.T) {
	fake, err := kbstest.NewFakeSNP([]byte("host-data"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := attest.New(attest.Options{Root: t.TempDir(), SEVDevice: fake})
	if err != nil {
		t.Fatal(err)
	}
	rd := bytes.Repeat([]byte{0xab}, 48)
	ev, err := a.Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	p, err := attest.ParseSNPEvidence(ev)
	if err != nil {
		t.Fatalf("parse own evidence: %v", err)
	}
	want := make([]byte, 64)
	copy(want, rd)
	if got := attest.Bytes(p.Report.ReportData); !bytes.Equal(got, want) {
		t.Fatalf("report_data %x, want %x", got, want)
	}
	if !bytes.HasPrefix(attest.Bytes(p.Report.HostData), []byte("host-data")) {
		t.Fatalf("host_data %x", attest.Bytes(p.Report.HostData))
	}
	if len(p.Certs["VCEK"]) == 0 || len(p.Certs["ARK"]) == 0 {
		t.Fatalf("cert chain missing VCEK/ARK: %v", p.Certs)
	}
	if err := kbstest.VerifySNP(p, fake.ARK()); err != nil {
		t.Fatalf("signature of round-tripped report: %v", err)
	}
	// Flipping a signed byte must break the signature.
	p.Raw[0x90] ^= 1
	if err := kbstest.VerifySNP(p, fake.ARK()); err == nil {
		t.Fatal("tampered report verified")
	}
}

// go-tdx-guest's canned quote stands in for TDX hardware.
func TestTDXEvidence(t *testing.T) {
	quote := kbstest.CannedTDXQuote()
	a, err := attest.New(attest.Options{
		Root:     t.TempDir(),
		TDXQuote: func(context.Context, [64]byte) ([]byte, error) { return quote, nil },
		EventLog: func() ([]byte, error) { return []byte("log"), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := a.Evidence(context.Background(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := attest.ParseTDXEvidence(ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Quote, quote) || string(p.EventLog) != "log" || len(p.Body.GetMrConfigId()) != 48 {
		t.Fatalf("parsed %+v", p)
	}
}

func TestCheckInitdataSNP(t *testing.T) {
	toml := []byte("version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n")
	d := sha256.Sum256(toml)
	fake, err := kbstest.NewFakeSNP(d[:])
	if err != nil {
		t.Fatal(err)
	}
	a, _ := attest.New(attest.Options{Root: t.TempDir(), SEVDevice: fake})
	if err := attest.CheckInitdata(context.Background(), a, "sha256", d[:], toml); err != nil {
		t.Fatalf("matching HOST_DATA refused: %v", err)
	}
	other := sha256.Sum256([]byte("other"))
	err = attest.CheckInitdata(context.Background(), a, "sha256", other[:], nil)
	if err == nil || !strings.Contains(err.Error(), "HOST_DATA") {
		t.Fatalf("mismatching HOST_DATA: %v", err)
	}
	if err := attest.CheckInitdata(context.Background(), a, "sha256", other[:], toml); err == nil {
		t.Fatal("digest not matching the TOML accepted")
	}
	// sha384 digests are truncated to HOST_DATA's 32 bytes.
	d384 := sha512.Sum384(toml)
	fake384, _ := kbstest.NewFakeSNP(d384[:])
	a384, _ := attest.New(attest.Options{Root: t.TempDir(), SEVDevice: fake384})
	if err := attest.CheckInitdata(context.Background(), a384, "sha384", d384[:], toml); err != nil {
		t.Fatalf("sha384 truncated to HOST_DATA: %v", err)
	}
}

func TestCheckInitdataTDX(t *testing.T) {
	toml := []byte("version = \"0.1.0\"\nalgorithm = \"sha384\"\n")
	d := sha512.Sum384(toml)
	quote := kbstest.CannedTDXQuote()
	// The canned quote's MRCONFIGID is not our digest: refuse.
	a, _ := attest.New(attest.Options{Root: t.TempDir(),
		TDXQuote: func(context.Context, [64]byte) ([]byte, error) { return quote, nil }})
	if err := attest.CheckInitdata(context.Background(), a, "sha384", d[:], toml); err == nil ||
		!strings.Contains(err.Error(), "MRCONFIGID") {
		t.Fatalf("canned quote MRCONFIGID mismatch: %v", err)
	}
	// Kernel sysfs MRCONFIGID (a fake file) with the padded digest: accept.
	root := t.TempDir()
	dir := filepath.Join(root, "sys/devices/virtual/misc/tdx_guest/measurements")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	reg := make([]byte, 48)
	copy(reg, d[:])
	if err := os.WriteFile(filepath.Join(dir, "mrconfigid"), reg, 0o600); err != nil {
		t.Fatal(err)
	}
	a2, err := attest.New(attest.Options{Root: root})
	if err != nil || a2.Tee() != attest.TeeTDX {
		t.Fatalf("sysfs TDX detect: %v", err)
	}
	if err := attest.CheckInitdata(context.Background(), a2, "sha384", d[:], toml); err != nil {
		t.Fatalf("matching MRCONFIGID refused: %v", err)
	}
}

func FuzzParseEvidence(f *testing.F) {
	fake, err := kbstest.NewFakeSNP(nil)
	if err != nil {
		f.Fatal(err)
	}
	a, _ := attest.New(attest.Options{Root: f.TempDir(), SEVDevice: fake})
	snp, _ := a.Evidence(context.Background(), nil)
	f.Add([]byte(snp))
	tdx, _ := json.Marshal(attest.TDXEvidence{Quote: base64.StdEncoding.EncodeToString(kbstest.CannedTDXQuote())})
	f.Add(tdx)
	f.Add([]byte(`{"svn":"1","report_data":"AAAA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = attest.ParseSampleEvidence(data)
		_, _ = attest.ParseTDXEvidence(data)
		if p, err := attest.ParseSNPEvidence(data); err == nil && len(p.Raw) != attest.SNPReportSize {
			t.Fatalf("raw report of %d bytes", len(p.Raw))
		}
	})
}
