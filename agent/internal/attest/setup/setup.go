// Package setup assembles the agent's attestation side at start-up: it picks
// the attester, verifies the initdata binding (refusing to run on a
// mismatch), opens the runtime measurement log, builds the KBS client from
// initdata (or agent.aa_kbc_params), prefetches credentials, and serves the
// workload API. The daemon calls Start before it listens.
package setup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/api"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/kbs"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/sealed"
)

// Options for Start: the few settings attestation needs, not the agent's
// whole configuration.
type Options struct {
	// Confidential refuses to run without a TEE or on any initdata
	// mismatch.
	Confidential bool
	// AllowSample enables the unsigned sample attester when no TEE is
	// found (development only; attest refuses it in confidential mode).
	AllowSample bool
	// StateDir holds the runtime measurement log.
	StateDir string
	// AAKBCParams is the older "cc_kbc::<KBS URL>" form of the KBS
	// address, used when initdata names no KBS.
	AAKBCParams string
	// KBSResources are credentials fetched at start-up besides cdh.toml's,
	// in CDH's "uri::path,uri::path" form (config.ParseKBSResources).
	KBSResources string
	// WorkloadAPI serves the workload API (guest_components_procs =
	// api-server-rest) in APIMode: all, attestation or resource.
	WorkloadAPI bool
	APIMode     string

	Initdata *initdata.Initdata
	Log      *slog.Logger
	// Attest overrides TEE probing (tests inject fake devices); its
	// Confidential and AllowSample are taken from the fields above.
	Attest attest.Options
	// CredentialRoot is where [[credentials]] paths are rooted ("/" when empty).
	CredentialRoot string
	// APIAddr is where the workload API listens (api.DefaultAddr when empty).
	APIAddr string
	// DecisionHead gives the workload API the policy decision log's head
	// (the policy engine starts after attestation, so it is late-bound).
	DecisionHead func() string
}

// Attestation is the running attestation side. Its methods are safe to call
// when parts are absent: they fail with FAILED_PRECONDITION and a reason.
type Attestation struct {
	Attester attest.Attester
	KBS      *kbs.Client
	Events   *eventlog.Log
	Unsealer *sealed.Unsealer
	// APIAddr is the workload API's address, when it is served.
	APIAddr net.Addr

	log  *slog.Logger
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Start brings attestation up. An error means the agent must not serve.
func Start(ctx context.Context, o Options) (*Attestation, error) {
	a := &Attestation{log: o.Log}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	ao := o.Attest
	ao.AllowSample, ao.Confidential = o.AllowSample, o.Confidential
	ao.EventLog = func() ([]byte, error) { return eventlog.CCEventLog(eventlog.CCELPath, a.Events) }
	att, err := attest.New(ao)
	switch {
	case errors.Is(err, attest.ErrNoTEE) && o.Confidential:
		// Confidential mode promises a bound initdata and keys released
		// only after attestation; neither can be kept without a TEE.
		return nil, fmt.Errorf("confidential mode needs a TEE: %w", err)
	case errors.Is(err, attest.ErrNoTEE):
		// Outside confidential mode (development, tests) the agent runs
		// without attestation and says what is missing.
		if o.Initdata != nil {
			a.log.WarnContext(ctx, "initdata binding not verified", "reason", err.Error())
		}
		a.log.InfoContext(ctx, "attestation disabled", "reason", err.Error())
		return a, nil
	case err != nil:
		return nil, err
	}
	a.Attester = att
	if err := a.checkBinding(ctx, o.Initdata, o.Confidential); err != nil {
		return nil, err
	}
	if err := a.openEvents(o.StateDir, att.Tee()); err != nil {
		return nil, err
	}
	if o.Initdata == nil {
		// Running without initdata is legitimate (pods configured through
		// the image alone) but must be visible to a verifier: the policy
		// in force is then the image's, not one the pod's owner wrote.
		if err := a.Events.Record(eventlog.DomainCocoon, eventlog.OpInitdata, eventlog.InitdataNone); err != nil {
			a.Close()
			return nil, fmt.Errorf("measuring the absence of initdata: %w", err)
		}
	}
	if err := a.startKBS(ctx, o); err != nil {
		a.Close()
		return nil, err
	}
	a.Unsealer = &sealed.Unsealer{}
	if a.KBS != nil {
		a.Unsealer.KBS = a.KBS
	}
	ctx, a.stop = context.WithCancel(context.WithoutCancel(ctx))
	if o.WorkloadAPI {
		a.serveAPI(ctx, o.APIMode, o.APIAddr, o.DecisionHead)
	}
	return a, nil
}

// checkBinding verifies that the TEE's initdata register matches what the
// agent was given: the digest of its initdata, or all zero when it has none.
// A confidential agent refuses on any mismatch; outside confidential mode a
// withheld initdata is only reported (such agents may not look for the disk).
func (a *Attestation) checkBinding(ctx context.Context, id *initdata.Initdata, confidential bool) error {
	att := a.Attester
	if id != nil {
		if err := attest.CheckInitdata(ctx, att, id.Algorithm, id.Digest, id.Raw); err != nil {
			return err
		}
		a.log.InfoContext(ctx, "initdata binding verified", "tee", att.Tee(), "algorithm", id.Algorithm, "digest", id.DigestHex())
		return nil
	}
	err := attest.CheckNoInitdata(ctx, att)
	switch {
	case errors.Is(err, attest.ErrInitdataWithheld) && !confidential:
		a.log.WarnContext(ctx, "initdata expected by the TEE but not found; running without it because the agent is not confidential", "reason", err.Error())
		return nil
	case err != nil:
		return err
	}
	a.log.InfoContext(ctx, "no initdata: the TEE's initdata register is zero; serving under the image's configuration", "tee", att.Tee())
	return nil
}

func (a *Attestation) openEvents(stateDir, tee string) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("eventlog: %w", err)
	}
	var ext eventlog.Extender
	if tee == attest.TeeTDX {
		var err error
		if ext, err = eventlog.DetectRTMR(); err != nil {
			return err
		}
	}
	l, err := eventlog.Open(filepath.Join(stateDir, "eventlog"), ext)
	if err != nil {
		return err
	}
	a.Events = l
	return nil
}

func (a *Attestation) startKBS(ctx context.Context, o Options) error {
	var aaTOML, cdhTOML, raw []byte
	if id := o.Initdata; id != nil {
		aaTOML, cdhTOML, raw = []byte(id.Data[initdata.KeyAA]), []byte(id.Data[initdata.KeyCDH]), id.Raw
	}
	kc, err := kbs.ParseConfig(aaTOML, cdhTOML)
	if err != nil {
		return fmt.Errorf("initdata: %w", err)
	}
	if kc.URL == "" && o.AAKBCParams != "" {
		if kc, err = kbs.ParseKBCParams(o.AAKBCParams); err != nil {
			return err
		}
	}
	if kc.URL == "" {
		a.log.InfoContext(ctx, "no KBS configured: kbs:// resources and sealed secrets are unavailable")
		return nil
	}
	// cdh.kbs_resources adds to cdh.toml's [[credentials]], as the data hub
	// does (hub/src/config/mod.rs extend_credentials_from_kernel_cmdline);
	// kbs.New confines them to the same directory.
	extra, err := config.ParseKBSResources(o.KBSResources)
	if err != nil {
		return err
	}
	for _, r := range extra {
		kc.Credentials = append(kc.Credentials, kbs.Credential{ResourceURI: r.URI, Path: r.Path})
	}
	a.KBS, err = kbs.New(kbs.Options{Config: kc, Attester: a.Attester, Initdata: raw, Log: a.log})
	if err != nil {
		return err
	}
	if len(kc.Credentials) > 0 {
		root := o.CredentialRoot
		if root == "" {
			root = "/"
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := a.KBS.FetchCredentials(ctx, root); err != nil {
				a.log.ErrorContext(ctx, "fetching KBS credentials failed", "attest_error", err)
			}
		}()
	}
	return nil
}

func (a *Attestation) serveAPI(ctx context.Context, mode, addr string, head func() string) {
	d := api.Deps{Attester: a.Attester, Log: a.log, DecisionHead: head}
	if a.KBS != nil {
		d.Resources, d.Tokens = a.KBS, a.KBS
	}
	// Only a real log: a nil pointer in the interface would not read as
	// "no log".
	if a.Events != nil {
		d.Events = a.Events
		d.EventsMeasured = a.Attester != nil && a.Attester.Tee() == attest.TeeTDX
	}
	h, err := api.NewHandler(d, mode)
	if err != nil {
		a.log.ErrorContext(ctx, "workload API disabled", "attest_error", err)
		return
	}
	if addr == "" {
		addr = api.DefaultAddr
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		a.log.ErrorContext(ctx, "workload API disabled", "addr", addr, "attest_error", err)
		return
	}
	a.APIAddr = l.Addr()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := api.Serve(ctx, l, h); err != nil {
			a.log.ErrorContext(ctx, "workload API stopped", "attest_error", err)
		}
	}()
	a.log.InfoContext(ctx, "workload API serving", "addr", l.Addr().String(), "mode", mode)
}

// Close stops the workload API and closes the event log.
func (a *Attestation) Close() {
	if a.stop != nil {
		a.stop()
	}
	a.wg.Wait()
	if a.Events != nil {
		a.Events.Close()
	}
}

var errNoKBS = errdefs.ErrFailedPrecondition.WithMessage("no KBS configured (initdata aa.toml/cdh.toml or agent.aa_kbc_params)")

// Resolve fetches a kbs:/// resource (image policy, auth.json, ...).
func (a *Attestation) Resolve(ctx context.Context, uri string) ([]byte, error) {
	if a.KBS == nil {
		return nil, errNoKBS
	}
	return a.KBS.Resolve(ctx, uri)
}

// ResolveKey fetches an image layer key-encryption key by kid.
func (a *Attestation) ResolveKey(ctx context.Context, kid string) ([]byte, error) {
	if a.KBS == nil {
		return nil, errNoKBS
	}
	return a.KBS.FetchKey(ctx, kid)
}

// UnsealEnv replaces sealed values in a container's environment.
func (a *Attestation) UnsealEnv(ctx context.Context, env []string) ([]string, error) {
	sealedAny := false
	for _, kv := range env {
		if _, v, _ := strings.Cut(kv, "="); sealed.IsSealed(v) {
			sealedAny = true
			break
		}
	}
	if !sealedAny {
		return env, nil
	}
	if a.Unsealer == nil {
		return nil, errdefs.ErrFailedPrecondition.WithMessage("sealed secrets need attestation, which is disabled (no TEE)")
	}
	return a.Unsealer.UnsealEnv(ctx, env)
}

// Record appends to the runtime measurement log; without a TEE it is a no-op.
func (a *Attestation) Record(domain, operation, content string) error {
	if a.Events == nil {
		return nil
	}
	return a.Events.Record(domain, operation, content)
}

// RecordPull measures a pulled image as CoCo does (domain
// github.com/confidential-containers, operation PullImage).
func (a *Attestation) RecordPull(ref, digest string) error {
	content := ref
	if digest != "" && !strings.Contains(ref, "@") {
		content = ref + "@" + digest
	}
	return a.Record(eventlog.DomainCoCo, eventlog.OpPullImage, content)
}

// RecordPolicyLoad measures the policy the agent starts with (it implements
// policy.Measurer, as do the next two).
func (a *Attestation) RecordPolicyLoad(digest string) error {
	return a.recordPolicy(eventlog.OpLoadPolicy, digest)
}

// RecordPolicySet measures a policy SetPolicy put in force.
func (a *Attestation) RecordPolicySet(digest string) error {
	return a.recordPolicy(eventlog.OpSetPolicy, digest)
}

// recordPolicy records a policy's sha256, so that a verifier replaying the
// log knows which policy guarded the pod.
func (a *Attestation) recordPolicy(op, digest string) error {
	if err := a.Record(eventlog.DomainCocoon, op, "sha256:"+digest); err != nil {
		return fmt.Errorf("measuring policy: %w", err)
	}
	return nil
}

// RecordDecisionHead measures the decision log's head (the hash of its
// newest entry), so that log files dropped by rotation, or by the host,
// still end at a measured hash. An empty log has no head to measure.
func (a *Attestation) RecordDecisionHead(head string) error {
	if head == "" || a.Events == nil {
		return nil
	}
	if err := a.Events.Record(eventlog.DomainCocoon, eventlog.OpDecisionsHead, "sha256:"+head); err != nil {
		return fmt.Errorf("measuring the decision log head: %w", err)
	}
	return nil
}
