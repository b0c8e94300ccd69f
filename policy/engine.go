package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/cocoon-tee/cocoon/internal/errs"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/policy/input"
)

// Engine holds the policy in force and enforces it on agent requests.
type Engine struct {
	log    *slog.Logger
	dlog   *decisionlog.Log
	cur    atomic.Pointer[Policy]
	inputs input.Values
	canon  input.Canonical
	// failClosed refuses what the decision log cannot record.
	failClosed bool
	measurer   Measurer
	observer   atomic.Pointer[observerBox]
}

// EngineOptions are an engine's collaborators; all may be zero.
type EngineOptions struct {
	// Decisions is the decision log (nil: none).
	Decisions *decisionlog.Log
	Log       *slog.Logger
	// Confidential refuses every request, and SetPolicy, whose decision
	// cannot be written to the decision log: an unrecorded decision would
	// let the host act unseen by filling the log's file system. Otherwise
	// such failures are logged and the request proceeds.
	Confidential bool
	// Measurer, when set, measures every policy SetPolicy installs and
	// the decision log's head after it (Boot also hands it the log's
	// rotation and measures the first policy).
	Measurer Measurer
}

// NewEngine returns an engine enforcing p. dlog may be nil (no decision log).
func NewEngine(p *Policy, dlog *decisionlog.Log, log *slog.Logger) *Engine {
	return NewEngineWith(p, EngineOptions{Decisions: dlog, Log: log})
}

// NewEngineWith returns an engine enforcing p. A first policy entry that
// cannot be written is logged; Boot refuses to start on it instead.
func NewEngineWith(p *Policy, o EngineOptions) *Engine {
	e, _ := newEngine(p, o)
	return e
}

func newEngine(p *Policy, o EngineOptions) (*Engine, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{log: o.Log, dlog: o.Decisions, failClosed: o.Confidential, measurer: o.Measurer}
	err := e.record(e.policyEntry(p))
	e.install(p)
	return e, err
}

// DecisionHead is the hash of the newest decision-log entry, "" when there
// is no decision log or nothing was decided yet.
func (e *Engine) DecisionHead() string {
	if e.dlog == nil {
		return ""
	}
	return e.dlog.Head()
}

// Policy returns the policy in force.
func (e *Engine) Policy() *Policy { return e.cur.Load() }

func (e *Engine) policyEntry(p *Policy) decisionlog.Entry {
	return decisionlog.Entry{Kind: decisionlog.KindPolicy, PolicySHA256: p.digest, Source: p.source}
}

func (e *Engine) install(p *Policy) {
	e.cur.Store(p)
	e.log.Info("policy installed", "source", p.source, "sha256", p.digest, "allow_failures", p.allowFailures)
}

// SetPolicy compiles text and makes it the policy in force with fresh state.
// The gate has already checked the request against the current policy (as
// SetPolicyRequest with input {"policy": text}). A policy that does not load
// leaves the current one in place, and so does one whose installation the
// decision log cannot record in confidential mode. The head after the
// policy entry and the policy are then measured (see measureSet): a failed
// measurement is an error, with the policy already in force.
func (e *Engine) SetPolicy(ctx context.Context, text, source string) error {
	p, err := Load(ctx, text, source)
	if err != nil {
		return errdefs.ErrInvalidArgument.WithMessage("SetPolicy: " + err.Error())
	}
	if err := e.record(e.policyEntry(p)); err != nil && e.failClosed {
		return unrecorded("SetPolicyRequest", err)
	}
	e.install(p)
	return e.measureSet(p)
}

// unrecorded is the refusal of a request whose decision the log could not
// take. UNAVAILABLE, not PERMISSION_DENIED: the policy did not refuse it,
// and the condition passes once the log can write again.
func unrecorded(name string, err error) error {
	return errs.Newf(errdefs.ErrUnavailable, "%s refused: its decision cannot be recorded in the decision log (confidential mode): %v", name, err)
}

// Check enforces the policy in force on one request input.
func (e *Engine) Check(ctx context.Context, name string, in map[string]any) (func(error), error) {
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "%s: input: %v", name, err)
	}
	return e.check(ctx, e.cur.Load(), name, v, "", func() string { return inputDigest(v) }, nil, nil)
}

// check decides in; key names it in the decision cache ("" for none,
// see cacheKey); digest, called only when there is a decision log, gives
// the input's canonical sha256; sum, when set, goes into the decision
// entry (summarize).
// A verified exec grant is decided with its nonce (decideGrant) and, once
// allowed, admitted to the handler until the request finishes.
func (e *Engine) check(ctx context.Context, p *Policy, name string, in ast.Value, key string, digest func() string, grant *ExecGrant, sum *decisionlog.Summary) (func(error), error) {
	var d Decision
	var pend *Pending
	var err error
	if grant != nil {
		d, pend, err = p.decideGrant(ctx, name, in, grant, time.Now())
	} else {
		d, pend, err = p.decideCached(ctx, name, in, key)
	}
	entry := decisionlog.Entry{
		Kind:         decisionlog.KindDecision,
		Request:      name,
		PolicySHA256: p.digest,
		Ops:          d.Ops,
		Summary:      sum,
	}
	if e.dlog != nil {
		entry.InputSHA256 = digest()
	}
	if err != nil {
		entry.Message = err.Error()
		_ = e.record(entry) // refused whether recorded or not
		return nil, errs.Newf(errdefs.ErrInternal, "%s: internal error %v", name, err)
	}
	entry.Allowed = &d.Allowed
	if d.Overridden {
		entry.Message = "denied, allowed by AllowRequestsFailingPolicy"
		e.log.Warn("policy: ignoring denial", "request", name, "why", d.Why, "prints", d.Prints)
	}
	rerr := e.record(entry)
	if !d.Allowed {
		return nil, errs.Newf(errdefs.ErrPermissionDenied, "%s is blocked by policy: %s", name, denial(d))
	}
	if rerr != nil && e.failClosed {
		if pend != nil {
			pend.Discard()
		}
		return nil, unrecorded(name, rerr)
	}
	if pend == nil {
		return nil, nil
	}
	release := func() {}
	if grant != nil && grant.Admit != nil {
		release = grant.Admit()
	}
	return func(opErr error) {
		defer release()
		ok := opErr == nil
		c := decisionlog.Entry{Kind: decisionlog.KindCommit, Request: name, InputSHA256: entry.InputSHA256, PolicySHA256: p.digest, Committed: &ok}
		if ok {
			if err := pend.Commit(context.WithoutCancel(ctx)); err != nil {
				ok = false
				c.Message = err.Error()
				e.log.Error("policy state commit failed", "request", name, "error", err)
			}
		} else {
			pend.Discard()
		}
		// The operation has run and its answer is fixed; a commit entry
		// that cannot be written is logged (and the decision entry before
		// it shows the request was allowed).
		_ = e.record(c)
	}, nil
}

// refuse records and returns a refusal made before the policy was asked
// (the observer's): it is final, AllowRequestsFailingPolicy does not
// apply.
func (e *Engine) refuse(p *Policy, name string, digest func() string, sum *decisionlog.Summary, err error) error {
	no := false
	entry := decisionlog.Entry{Kind: decisionlog.KindDecision, Request: name, PolicySHA256: p.digest, Allowed: &no, Message: err.Error(), Summary: sum}
	if e.dlog != nil {
		entry.InputSHA256 = digest()
	}
	_ = e.record(entry) // refused whether recorded or not
	return err
}

// denial is the text after "is blocked by policy: ": the one-line reason
// when there is one (CreateContainer), then the rules' print output as
// Kata reports it.
func denial(d Decision) string {
	switch {
	case d.Why == "":
		return d.Prints
	case d.Prints == "":
		return d.Why
	}
	return d.Why + "; policy output: " + d.Prints
}

// record appends to the decision log; failures are logged and returned.
func (e *Engine) record(en decisionlog.Entry) error {
	if e.dlog == nil {
		return nil
	}
	if _, err := e.dlog.Append(en); err != nil {
		e.log.Error("decision log append failed", "request", en.Request, "kind", en.Kind, "fail_closed", e.failClosed, "error", err)
		return err
	}
	return nil
}

// inputDigest is the sha256 of the input's canonical JSON (sorted keys),
// the bytes encoding/json writes for the generic form of the input.
func inputDigest(in ast.Value) string {
	doc, err := ast.JSON(in)
	if err != nil {
		return ""
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
