package attest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"
	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxclient "github.com/google/go-tdx-guest/client"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"
)

// TDXEvidence is the evidence Trustee's TDX verifier takes.
type TDXEvidence struct {
	// CCEventLog is base64 of the CCEL plus the agent's runtime event log, or null.
	CCEventLog *string `json:"cc_eventlog"`
	// Quote is base64 of the TD quote.
	Quote string `json:"quote"`
}

// TDX attests an Intel TDX guest.
type TDX struct{ o Options }

func newTDX(o Options) *TDX { return &TDX{o: o} }

// Tee implements Attester.
func (*TDX) Tee() string { return TeeTDX }

// Evidence implements Attester.
func (t *TDX) Evidence(ctx context.Context, reportData []byte) (json.RawMessage, error) {
	rd, err := padReportData(reportData)
	if err != nil {
		return nil, err
	}
	quote, err := t.quote(ctx, rd)
	if err != nil {
		return nil, err
	}
	ev := TDXEvidence{Quote: base64.StdEncoding.EncodeToString(quote)}
	if t.o.EventLog != nil {
		log, err := t.o.EventLog()
		if err != nil {
			return nil, fmt.Errorf("tdx: event log: %w", err)
		}
		if len(log) > 0 {
			s := base64.StdEncoding.EncodeToString(log)
			ev.CCEventLog = &s
		}
	}
	return json.Marshal(ev)
}

func (t *TDX) quote(ctx context.Context, rd [64]byte) ([]byte, error) {
	if t.o.TDXQuote != nil {
		return t.o.TDXQuote(ctx, rd)
	}
	if tsm, ok, err := tsmClient(t.o); err != nil {
		return nil, err
	} else if ok {
		resp, err := report.Get(tsm, &report.Request{InBlob: rd[:]})
		if err != nil {
			return nil, fmt.Errorf("tdx: configfs-tsm report: %w", err)
		}
		return resp.OutBlob, nil
	}
	dev, err := tdxclient.OpenDevice()
	if err != nil {
		return nil, fmt.Errorf("tdx: open %s: %w", tdxDevice, err)
	}
	defer dev.Close()
	q, err := tdxclient.GetRawQuote(dev, rd)
	if err != nil {
		return nil, fmt.Errorf("tdx: quote via %s: %w", tdxDevice, err)
	}
	return q, nil
}

// InitdataRegister returns MRCONFIGID: from the kernel's measurements sysfs
// (Linux 6.16+) when present, else from a freshly generated quote.
func (t *TDX) InitdataRegister(ctx context.Context) ([]byte, error) {
	if b, err := os.ReadFile(t.o.path(tdxMeasurements + "/mrconfigid")); err == nil {
		return b, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tdx: read mrconfigid: %w", err)
	}
	q, err := t.quote(ctx, [64]byte{})
	if err != nil {
		return nil, err
	}
	body, err := TDXQuoteBody(q)
	if err != nil {
		return nil, err
	}
	return body.GetMrConfigId(), nil
}

// TDXQuoteBody parses a TD quote (version 4) and returns its TD report body.
func TDXQuoteBody(quote []byte) (*tdxpb.TDQuoteBody, error) {
	parsed, err := tdxabi.QuoteToProto(quote)
	if err != nil {
		return nil, fmt.Errorf("tdx: parse quote: %w", err)
	}
	q, ok := parsed.(*tdxpb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("tdx: unsupported quote format %T", parsed)
	}
	return q.GetTdQuoteBody(), nil
}

// tsmClient returns the configfs-tsm client to use, if any.
func tsmClient(o Options) (configfsi.Client, bool, error) {
	if o.TSM != nil {
		return o.TSM, true, nil
	}
	if o.Root != "" && o.Root != "/" {
		return nil, false, nil // never touch the real configfs from a test root
	}
	if !exists(o.path(tsmReport)) {
		return nil, false, nil
	}
	c, err := linuxtsm.MakeClient()
	if err != nil {
		return nil, false, fmt.Errorf("configfs-tsm: %w", err)
	}
	return c, true, nil
}
