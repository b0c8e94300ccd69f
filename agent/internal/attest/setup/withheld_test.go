package setup_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/setup"
)

// A host that measures the genuine pod's initdata into the TEE but does not
// attach the disk must not get the pod running under the image's default
// policy. Each case is one TEE register state and what the agent found.
func TestWithheldInitdata(t *testing.T) {
	id, err := initdata.Create("sha384", map[string]string{initdata.KeyPolicy: "package agent_policy\n"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := initdata.Create("sha384", map[string]string{initdata.KeyPolicy: "package agent_policy\ndefault ExecProcessRequest := true\n"})
	if err != nil {
		t.Fatal(err)
	}
	canned := kbstest.CannedTDXQuote()
	body, err := attest.TDXQuoteBody(canned)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body.GetMrConfigId(), make([]byte, 48)) {
		t.Fatal("the canned TDX quote's MRCONFIGID is set; the quote cases below expect it zero")
	}

	// snp stands a fake SEV-SNP device in, its HOST_DATA set to hostData.
	snp := func(hostData []byte) func(t *testing.T) attest.Options {
		return func(t *testing.T) attest.Options {
			fake, err := kbstest.NewFakeSNP(hostData)
			if err != nil {
				t.Fatal(err)
			}
			return attest.Options{Root: t.TempDir(), SEVDevice: fake}
		}
	}
	// tdxSysfs gives TDX with MRCONFIGID from the kernel's measurements file.
	tdxSysfs := func(reg []byte) func(t *testing.T) attest.Options {
		return func(t *testing.T) attest.Options {
			root := t.TempDir()
			dir := filepath.Join(root, "sys/devices/virtual/misc/tdx_guest/measurements")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "mrconfigid"), reg, 0o644); err != nil {
				t.Fatal(err)
			}
			return attest.Options{Root: root, Tee: attest.TeeTDX}
		}
	}
	// tdxQuote gives TDX with MRCONFIGID (all zero) read from go-tdx-guest's
	// canned quote.
	tdxQuote := func(t *testing.T) attest.Options {
		return attest.Options{Root: t.TempDir(), TDXQuote: func(context.Context, [64]byte) ([]byte, error) { return canned, nil }}
	}

	cases := []struct {
		name     string
		tee      func(t *testing.T) attest.Options
		initdata *initdata.Initdata
		// refuse is a text the refusal must contain; "" means the agent runs.
		refuse string
		// none means the "no initdata" event must be in the measurement log.
		none bool
	}{
		{"snp/register set, no initdata", snp(id.Bound(32)), nil, "withheld", false},
		{"snp/register zero, no initdata", snp(nil), nil, "", true},
		{"snp/register set, matching initdata", snp(id.Bound(32)), id, "", false},
		{"snp/register set, other initdata", snp(id.Bound(32)), other, "HOST_DATA", false},
		{"snp/register zero, initdata", snp(nil), id, "HOST_DATA", false},
		{"tdx quote/register zero, no initdata", tdxQuote, nil, "", true},
		{"tdx quote/register zero, initdata", tdxQuote, id, "MRCONFIGID", false},
		{"tdx/register set, no initdata", tdxSysfs(id.Bound(48)), nil, "withheld", false},
		{"tdx/register zero, no initdata", tdxSysfs(make([]byte, 48)), nil, "", true},
		{"tdx/register set, matching initdata", tdxSysfs(id.Bound(48)), id, "", false},
		{"tdx/register set, other initdata", tdxSysfs(id.Bound(48)), other, "MRCONFIGID", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := options(t, setup.Options{Confidential: true, Initdata: tc.initdata, Attest: tc.tee(t)})
			o.WorkloadAPI = false // guest_components_procs = "none"
			a, err := setup.Start(context.Background(), o)
			if tc.refuse != "" {
				if err == nil {
					a.Close()
					t.Fatalf("agent started; want a refusal mentioning %q", tc.refuse)
				}
				if !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("refusal %q does not mention %q", err, tc.refuse)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			a.Close()
			raw, err := os.ReadFile(filepath.Join(o.StateDir, "eventlog"))
			if err != nil {
				t.Fatal(err)
			}
			evs, err := eventlog.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, e := range evs {
				found = found || (e.Domain == eventlog.DomainCocoon && e.Operation == eventlog.OpInitdata && e.Content == eventlog.InitdataNone)
			}
			if found != tc.none {
				t.Fatalf("'no initdata' event recorded = %v, want %v (log %+v)", found, tc.none, evs)
			}
		})
	}
}

// Outside confidential mode (development) a withheld initdata is reported
// and measured, not fatal: such agents may run without scanning for the disk.
func TestWithheldInitdataNotConfidential(t *testing.T) {
	id, _ := initdata.Create("sha256", map[string]string{})
	fake, err := kbstest.NewFakeSNP(id.Bound(32))
	if err != nil {
		t.Fatal(err)
	}
	o := options(t, setup.Options{Attest: attest.Options{Root: t.TempDir(), SEVDevice: fake}})
	o.WorkloadAPI = false // guest_components_procs = "none"
	a, err := setup.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("non-confidential agent refused: %v", err)
	}
	a.Close()
	raw, _ := os.ReadFile(filepath.Join(o.StateDir, "eventlog"))
	evs, err := eventlog.Parse(raw)
	if err != nil || len(evs) != 1 || evs[0].Operation != eventlog.OpInitdata || evs[0].Content != eventlog.InitdataNone {
		t.Fatalf("event log %+v %v, want one 'no initdata' event", evs, err)
	}
}
