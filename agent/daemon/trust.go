package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	attestboot "github.com/cocoon-tee/cocoon/agent/internal/attest/setup"
	"github.com/cocoon-tee/cocoon/agent/internal/observe"
	"github.com/cocoon-tee/cocoon/policy"
)

// trust is what the pod's owner and the TEE vouch for: the initdata the
// agent was started with (nil without one) and the attestation side, which
// has checked that the TEE carries that initdata's digest.
type trust struct {
	idata *initdata.Initdata
	att   *attestboot.Attestation
	// obs is the owner's cocoon.toml from initdata (observe.Default
	// without one).
	obs *observe.Config
	// engine is the policy engine, once it exists: the workload API,
	// which starts with attestation, attests the decision log's head on
	// demand, and the engine comes after attestation.
	engine atomic.Pointer[policy.Engine]
}

// startTrust finds the initdata and brings attestation up. Only a
// confidential agent or the guest's init scans /dev for the initdata disk:
// any other agent runs on a machine whose devices are not the pod's.
func startTrust(ctx context.Context, cfg config.Config, log *slog.Logger, tee attest.Options) (*trust, error) {
	tr := &trust{}
	idata, err := initdata.Discover(cfg.InitdataDevice, cfg.Confidential || cfg.GuestInit)
	if err != nil {
		if cfg.Confidential {
			return nil, fmt.Errorf("initdata: %w", err)
		}
		log.WarnContext(ctx, "initdata ignored", "error", err)
	}
	tr.idata = idata
	tr.obs = observe.Default()
	if idata != nil {
		obs, err := observe.FromInitdata(idata.Data)
		if err != nil && cfg.Confidential {
			return nil, fmt.Errorf("initdata: %w", err)
		}
		if err != nil {
			log.WarnContext(ctx, "initdata cocoon.toml ignored", "error", err)
		} else {
			tr.obs = obs
		}
	}
	// The TEE must carry this initdata's digest before anything is served.
	tr.att, err = attestboot.Start(ctx, attestOptions(cfg, idata, log, tee, tr.decisionHead))
	if err != nil {
		return nil, fmt.Errorf("attestation: %w", err)
	}
	return tr, nil
}

// attestOptions picks from the configuration the few settings attestation
// uses.
func attestOptions(cfg config.Config, idata *initdata.Initdata, log *slog.Logger, tee attest.Options, head func() string) attestboot.Options {
	return attestboot.Options{
		Confidential: cfg.Confidential,
		AllowSample:  cfg.AttestSample,
		StateDir:     cfg.StateDir,
		AAKBCParams:  cfg.AAKBCParams,
		KBSResources: cfg.KBSResources,
		WorkloadAPI:  cfg.GuestComponentsProcs == "api-server-rest",
		APIMode:      cfg.GuestComponentsRestAPI,
		Initdata:     idata,
		Log:          log,
		Attest:       tee,
		DecisionHead: head,
	}
}

// decisionHead is the decision log's head, "" before the engine exists.
func (tr *trust) decisionHead() string {
	if e := tr.engine.Load(); e != nil {
		return e.DecisionHead()
	}
	return ""
}

// startPolicy puts the first policy in force: the built-in one, the policy
// file's or initdata's (policy.Boot), measured through attestation before
// anything is served under it.
func startPolicy(ctx context.Context, cfg config.Config, tr *trust, log *slog.Logger) (*policy.Engine, error) {
	pol, err := policy.Boot(ctx, policy.BootConfig{
		PolicyFile:   cfg.PolicyFile,
		DecisionLog:  cfg.DecisionLog,
		Confidential: cfg.Confidential,
		Initdata:     initdataPolicy(tr.idata),
		Measurer:     tr.att,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	tr.engine.Store(pol)
	return pol, nil
}

// initdataPolicy is initdata's policy.rego for policy.Boot, nil when there
// is none; the decision log names it by the initdata's digest.
func initdataPolicy(idata *initdata.Initdata) *policy.Text {
	if idata == nil {
		return nil
	}
	text, ok := idata.Policy()
	if !ok {
		return nil
	}
	return &policy.Text{Rego: text, Source: "initdata:" + idata.DigestHex()}
}
