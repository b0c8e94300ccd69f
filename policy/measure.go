package policy

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// Measurer records the engine's events in the runtime measurement log (the
// TEE's event log), so that a verifier replaying that log knows which
// policies guarded the pod and where the decision log stood. The agent's
// attestation side implements it, and is a no-op without a TEE.
type Measurer interface {
	// RecordPolicyLoad records the sha256 (hex) of the policy the agent
	// starts with.
	RecordPolicyLoad(digest string) error
	// RecordPolicySet records the sha256 (hex) of a policy SetPolicy put
	// in force.
	RecordPolicySet(digest string) error
	// RecordDecisionHead records the decision log's head (the hash of its
	// newest entry). The log is hash-chained, so one measurement commits to
	// every decision before it. It is called before the log rotates, after
	// SetPolicy and from MeasureDecisions; not per decision, so that a
	// verifier replays the whole measurement log in one bounded request.
	RecordDecisionHead(head string) error
}

// measureSet measures a policy SetPolicy has put in force: first the
// decision log's head after the policy entry, then the policy itself. Both
// happen with the policy already in force, so a failure is an error: a
// verifier must not trust a log that omits the policy guarding the pod.
func (e *Engine) measureSet(p *Policy) error {
	if e.measurer == nil {
		return nil
	}
	if e.dlog != nil {
		if err := e.measurer.RecordDecisionHead(e.dlog.Head()); err != nil {
			return fmt.Errorf("SetPolicy: policy installed but the decision log head was not measured: %w", err)
		}
	}
	if err := e.measurer.RecordPolicySet(p.digest); err != nil {
		return fmt.Errorf("SetPolicy: policy installed but not measured: %v: %w", err, errdefs.ErrInternal)
	}
	return nil
}

// MeasureDecisions records the decision log's head now. The agent calls it
// when the pod is torn down, before a possible power-off, so the last
// decisions end at a measured hash too.
func (e *Engine) MeasureDecisions() error {
	if e.measurer == nil || e.dlog == nil {
		return nil
	}
	return e.measurer.RecordDecisionHead(e.dlog.Head())
}
