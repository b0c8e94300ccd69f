// Package attest owns the agent's view of the TEE it runs in: which TEE is
// present, hardware evidence bound to caller-chosen report data (TDX, SNP, or
// the explicit development-only "sample" attester), the launch-time register
// the initdata digest is bound to, and the parsers for the evidence formats the
// Trustee attestation service accepts.
package attest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	sevclient "github.com/google/go-sev-guest/client"
)

// TEE names, as the KBS protocol spells them in the auth request.
const (
	TeeTDX    = "tdx"
	TeeSNP    = "snp"
	TeeSample = "sample"
)

// MaxReportData is the size of the report-data field in TDX and SNP reports.
const MaxReportData = 64

// ErrNoTEE means no supported TEE was found and the sample attester was not
// explicitly allowed.
var ErrNoTEE = errors.New("no TEE found (looked for TDX and SEV-SNP guest devices)")

// Attester produces hardware-signed evidence binding reportData.
type Attester interface {
	// Tee names the TEE ("tdx", "snp", "sample").
	Tee() string
	// Evidence returns the TEE's evidence in the JSON shape Trustee expects,
	// with reportData (at most 64 bytes, zero-padded) in the signed report.
	Evidence(ctx context.Context, reportData []byte) (json.RawMessage, error)
}

// InitdataBinder is implemented by attesters whose hardware carries a
// launch-time register the host fills with the initdata digest.
type InitdataBinder interface {
	// InitdataRegister returns that register's raw contents
	// (TDX MRCONFIGID, 48 bytes; SNP HOST_DATA, 32 bytes).
	InitdataRegister(ctx context.Context) ([]byte, error)
}

// Options selects and configures the attester. The zero value probes the
// real machine.
type Options struct {
	// Root is prefixed to every probed path ("/" when empty); tests point it
	// at a directory holding fake device nodes.
	Root string
	// AllowSample permits the sample attester when no TEE is found. It is
	// never chosen without this, and never in confidential mode.
	AllowSample bool
	// Confidential refuses the sample attester even when allowed.
	Confidential bool
	// Tee forces a TEE instead of probing ("tdx", "snp", "sample").
	Tee string

	// TSM reaches configfs-tsm; nil uses the kernel's when present.
	TSM configfsi.Client
	// SEVDevice replaces /dev/sev-guest (tests pass go-sev-guest's fake).
	SEVDevice sevclient.Device
	// TDXQuote replaces quote generation (tests return go-tdx-guest's canned quote).
	TDXQuote func(ctx context.Context, reportData [64]byte) ([]byte, error)
	// EventLog returns the runtime event log included with TDX evidence, or nil.
	EventLog func() ([]byte, error)
}

func (o Options) path(p string) string {
	root := o.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, p)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Paths probed for TEE detection, relative to Options.Root.
const (
	tdxDevice       = "dev/tdx_guest"
	tdxSysfs        = "sys/devices/virtual/misc/tdx_guest"
	tdxMeasurements = "sys/devices/virtual/misc/tdx_guest/measurements"
	sevDevice       = "dev/sev-guest"
	sevPlatform     = "sys/devices/platform/sev-guest"
	tsmReport       = "sys/kernel/config/tsm/report"
)

// Detect names the TEE present under o.Root, or "" when there is none.
func Detect(o Options) string {
	switch {
	case exists(o.path(tdxDevice)) || exists(o.path(tdxSysfs)):
		return TeeTDX
	case exists(o.path(sevDevice)) || exists(o.path(sevPlatform)):
		return TeeSNP
	}
	return ""
}

// New returns the attester for the TEE found (or forced by o.Tee).
func New(o Options) (Attester, error) {
	tee := o.Tee
	if tee == "" {
		tee = Detect(o)
		if tee == "" && (o.SEVDevice != nil) {
			tee = TeeSNP
		}
		if tee == "" && o.TDXQuote != nil {
			tee = TeeTDX
		}
	}
	switch tee {
	case TeeTDX:
		return newTDX(o), nil
	case TeeSNP:
		return newSNP(o), nil
	case TeeSample:
		return newSample(o)
	case "":
		if o.AllowSample {
			return newSample(o)
		}
		return nil, ErrNoTEE
	}
	return nil, fmt.Errorf("unknown TEE %q (want tdx, snp or sample)", tee)
}

func newSample(o Options) (Attester, error) {
	if o.Confidential {
		return nil, errors.New("the sample attester is refused in confidential mode")
	}
	if !o.AllowSample {
		return nil, errors.New("the sample attester must be enabled explicitly")
	}
	return Sample{}, nil
}

// padReportData checks and zero-pads report data to 64 bytes.
func padReportData(rd []byte) ([64]byte, error) {
	var out [64]byte
	if len(rd) > MaxReportData {
		return out, fmt.Errorf("report data is %d bytes, at most %d fit in a report", len(rd), MaxReportData)
	}
	copy(out[:], rd)
	return out, nil
}
