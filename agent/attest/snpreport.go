package attest

import (
	"encoding/binary"
	"fmt"
	"strings"

	sevabi "github.com/google/go-sev-guest/abi"
)

// SNPReportSize is the size of an SEV-SNP ATTESTATION_REPORT.
const SNPReportSize = 0x4A0

// SNPSignedSize is how many leading report bytes the signature covers.
const SNPSignedSize = 0x2A0

// SNPTcb is a TCB_VERSION in the field layout Trustee's JSON uses. FMC is
// only present on Turin and later, otherwise null.
type SNPTcb struct {
	FMC        *uint8 `json:"fmc"`
	Bootloader uint8  `json:"bootloader"`
	TEE        uint8  `json:"tee"`
	SNP        uint8  `json:"snp"`
	Microcode  uint8  `json:"microcode"`
}

// SNPVersion is a firmware build number.
type SNPVersion struct {
	Major uint8 `json:"major"`
	Minor uint8 `json:"minor"`
	Build uint8 `json:"build"`
}

// SNPSignature holds the report's ECDSA P-384 signature, little-endian,
// zero-extended to 72 bytes as in the hardware layout.
type SNPSignature struct {
	R []int `json:"r"`
	S []int `json:"s"`
}

// SNPReport is an ATTESTATION_REPORT in the JSON shape of Trustee's SNP
// evidence (byte arrays as arrays of numbers).
type SNPReport struct {
	Version         uint32       `json:"version"`
	GuestSVN        uint32       `json:"guest_svn"`
	Policy          uint64       `json:"policy"`
	FamilyID        []int        `json:"family_id"`
	ImageID         []int        `json:"image_id"`
	VMPL            uint32       `json:"vmpl"`
	SigAlgo         uint32       `json:"sig_algo"`
	CurrentTCB      SNPTcb       `json:"current_tcb"`
	PlatInfo        uint64       `json:"plat_info"`
	KeyInfo         uint32       `json:"key_info"`
	ReportData      []int        `json:"report_data"`
	Measurement     []int        `json:"measurement"`
	HostData        []int        `json:"host_data"`
	IDKeyDigest     []int        `json:"id_key_digest"`
	AuthorKeyDigest []int        `json:"author_key_digest"`
	ReportID        []int        `json:"report_id"`
	ReportIDMA      []int        `json:"report_id_ma"`
	ReportedTCB     SNPTcb       `json:"reported_tcb"`
	CPUIDFamID      *uint8       `json:"cpuid_fam_id"`
	CPUIDModID      *uint8       `json:"cpuid_mod_id"`
	CPUIDStep       *uint8       `json:"cpuid_step"`
	ChipID          []int        `json:"chip_id"`
	CommittedTCB    SNPTcb       `json:"committed_tcb"`
	Current         SNPVersion   `json:"current"`
	Committed       SNPVersion   `json:"committed"`
	LaunchTCB       SNPTcb       `json:"launch_tcb"`
	Signature       SNPSignature `json:"signature"`
}

// SNPCert is one entry of the extended report's certificate table.
// CertType is "VCEK", "VLEK", "ASK", "ARK", "CRL" or {"OTHER": "<guid>"}.
type SNPCert struct {
	CertType any   `json:"cert_type"`
	Data     []int `json:"data"`
}

// SNPEvidence is the evidence Trustee's SNP verifier takes.
type SNPEvidence struct {
	AttestationReport SNPReport `json:"attestation_report"`
	CertChain         []SNPCert `json:"cert_chain"`
}

// turinFamily is the CPUID family of AMD Turin, whose TCB layout adds an FMC field.
const turinFamily = 0x1A

func ints(b []byte) []int {
	out := make([]int, len(b))
	for i, v := range b {
		out[i] = int(v)
	}
	return out
}

func u8p(v uint8) *uint8 { return &v }

func tcbFromRaw(b []byte, turin bool) SNPTcb {
	if turin {
		return SNPTcb{FMC: u8p(b[0]), Bootloader: b[1], TEE: b[2], SNP: b[3], Microcode: b[7]}
	}
	return SNPTcb{Bootloader: b[0], TEE: b[1], SNP: b[6], Microcode: b[7]}
}

// SNPReportFromRaw converts a raw 1184-byte report into its JSON form.
func SNPReportFromRaw(raw []byte) (*SNPReport, error) {
	if len(raw) < SNPReportSize {
		return nil, fmt.Errorf("snp: report is %d bytes, want %d", len(raw), SNPReportSize)
	}
	le32 := func(o int) uint32 { return binary.LittleEndian.Uint32(raw[o:]) }
	le64 := func(o int) uint64 { return binary.LittleEndian.Uint64(raw[o:]) }
	r := &SNPReport{
		Version:         le32(0x00),
		GuestSVN:        le32(0x04),
		Policy:          le64(0x08),
		FamilyID:        ints(raw[0x10:0x20]),
		ImageID:         ints(raw[0x20:0x30]),
		VMPL:            le32(0x30),
		SigAlgo:         le32(0x34),
		PlatInfo:        le64(0x40),
		KeyInfo:         le32(0x48),
		ReportData:      ints(raw[0x50:0x90]),
		Measurement:     ints(raw[0x90:0xC0]),
		HostData:        ints(raw[0xC0:0xE0]),
		IDKeyDigest:     ints(raw[0xE0:0x110]),
		AuthorKeyDigest: ints(raw[0x110:0x140]),
		ReportID:        ints(raw[0x140:0x160]),
		ReportIDMA:      ints(raw[0x160:0x180]),
		ChipID:          ints(raw[0x1A0:0x1E0]),
		Current:         SNPVersion{Build: raw[0x1E8], Minor: raw[0x1E9], Major: raw[0x1EA]},
		Committed:       SNPVersion{Build: raw[0x1EC], Minor: raw[0x1ED], Major: raw[0x1EE]},
		Signature:       SNPSignature{R: ints(raw[0x2A0:0x2E8]), S: ints(raw[0x2E8:0x330])},
	}
	turin := false
	if r.Version >= 3 {
		r.CPUIDFamID, r.CPUIDModID, r.CPUIDStep = u8p(raw[0x188]), u8p(raw[0x189]), u8p(raw[0x18A])
		turin = raw[0x188] >= turinFamily
	}
	r.CurrentTCB = tcbFromRaw(raw[0x38:0x40], turin)
	r.ReportedTCB = tcbFromRaw(raw[0x180:0x188], turin)
	r.CommittedTCB = tcbFromRaw(raw[0x1E0:0x1E8], turin)
	r.LaunchTCB = tcbFromRaw(raw[0x1F0:0x1F8], turin)
	return r, nil
}

func putBytes(dst []byte, src []int, name string) error {
	if len(src) != len(dst) {
		return fmt.Errorf("snp: %s has %d bytes, want %d", name, len(src), len(dst))
	}
	for i, v := range src {
		if v < 0 || v > 255 {
			return fmt.Errorf("snp: %s[%d] = %d is not a byte", name, i, v)
		}
		dst[i] = byte(v)
	}
	return nil
}

func tcbToRaw(dst []byte, t SNPTcb, turin bool) {
	if turin {
		if t.FMC != nil {
			dst[0] = *t.FMC
		}
		dst[1], dst[2], dst[3], dst[7] = t.Bootloader, t.TEE, t.SNP, t.Microcode
		return
	}
	dst[0], dst[1], dst[6], dst[7] = t.Bootloader, t.TEE, t.SNP, t.Microcode
}

// Raw rebuilds the hardware report bytes (reserved fields zero), so a
// verifier can check the signature over the first 0x2A0 bytes.
func (r *SNPReport) Raw() ([]byte, error) {
	raw := make([]byte, SNPReportSize)
	binary.LittleEndian.PutUint32(raw[0x00:], r.Version)
	binary.LittleEndian.PutUint32(raw[0x04:], r.GuestSVN)
	binary.LittleEndian.PutUint64(raw[0x08:], r.Policy)
	binary.LittleEndian.PutUint32(raw[0x30:], r.VMPL)
	binary.LittleEndian.PutUint32(raw[0x34:], r.SigAlgo)
	binary.LittleEndian.PutUint64(raw[0x40:], r.PlatInfo)
	binary.LittleEndian.PutUint32(raw[0x48:], r.KeyInfo)
	fields := []struct {
		lo, hi int
		v      []int
		name   string
	}{
		{0x10, 0x20, r.FamilyID, "family_id"}, {0x20, 0x30, r.ImageID, "image_id"},
		{0x50, 0x90, r.ReportData, "report_data"}, {0x90, 0xC0, r.Measurement, "measurement"},
		{0xC0, 0xE0, r.HostData, "host_data"}, {0xE0, 0x110, r.IDKeyDigest, "id_key_digest"},
		{0x110, 0x140, r.AuthorKeyDigest, "author_key_digest"}, {0x140, 0x160, r.ReportID, "report_id"},
		{0x160, 0x180, r.ReportIDMA, "report_id_ma"}, {0x1A0, 0x1E0, r.ChipID, "chip_id"},
		{0x2A0, 0x2E8, r.Signature.R, "signature.r"}, {0x2E8, 0x330, r.Signature.S, "signature.s"},
	}
	for _, f := range fields {
		if err := putBytes(raw[f.lo:f.hi], f.v, f.name); err != nil {
			return nil, err
		}
	}
	turin := false
	if r.Version >= 3 && r.CPUIDFamID != nil {
		raw[0x188] = *r.CPUIDFamID
		turin = *r.CPUIDFamID >= turinFamily
		if r.CPUIDModID != nil {
			raw[0x189] = *r.CPUIDModID
		}
		if r.CPUIDStep != nil {
			raw[0x18A] = *r.CPUIDStep
		}
	}
	tcbToRaw(raw[0x38:0x40], r.CurrentTCB, turin)
	tcbToRaw(raw[0x180:0x188], r.ReportedTCB, turin)
	tcbToRaw(raw[0x1E0:0x1E8], r.CommittedTCB, turin)
	tcbToRaw(raw[0x1F0:0x1F8], r.LaunchTCB, turin)
	raw[0x1E8], raw[0x1E9], raw[0x1EA] = r.Current.Build, r.Current.Minor, r.Current.Major
	raw[0x1EC], raw[0x1ED], raw[0x1EE] = r.Committed.Build, r.Committed.Minor, r.Committed.Major
	return raw, nil
}

// Bytes returns a byte-array field of the report as bytes (for verifiers).
func Bytes(v []int) []byte {
	out := make([]byte, len(v))
	for i, x := range v {
		out[i] = byte(x)
	}
	return out
}

var certNames = map[string]string{
	sevabi.VcekGUID:                        "VCEK",
	sevabi.VlekGUID:                        "VLEK",
	sevabi.AskGUID:                         "ASK",
	sevabi.ArkGUID:                         "ARK",
	"92f81bc3-5811-4d3d-97ff-d19f88dc67ea": "CRL",
}

// SNPCertChain converts an extended report's GUID certificate table.
func SNPCertChain(table []byte) ([]SNPCert, error) {
	if len(table) == 0 {
		return nil, nil
	}
	var ct sevabi.CertTable
	if err := ct.Unmarshal(table); err != nil {
		return nil, fmt.Errorf("snp: certificate table: %w", err)
	}
	var out []SNPCert
	for _, e := range ct.Entries {
		var typ any = map[string]string{"OTHER": e.GUID.String()}
		if n, ok := certNames[strings.ToLower(e.GUID.String())]; ok {
			typ = n
		}
		out = append(out, SNPCert{CertType: typ, Data: ints(e.RawCert)})
	}
	return out, nil
}

// CertGUID maps a Trustee cert_type name back to its GUID ("" if unknown).
func CertGUID(name string) string {
	for g, n := range certNames {
		if n == name {
			return g
		}
	}
	return ""
}
