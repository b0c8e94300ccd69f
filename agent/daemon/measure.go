package daemon

import (
	"fmt"
	"log/slog"

	attestboot "github.com/cocoon-tee/cocoon/agent/attest/boot"
	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
)

// measurePolicy records a policy's sha256 in the runtime measurement log, so
// a verifier replaying the log knows which policy guarded the pod (a no-op
// when attestation is disabled).
func measurePolicy(att *attestboot.Attestation, op, digest string) error {
	if err := att.Record(eventlog.DomainCocoon, op, "sha256:"+digest); err != nil {
		return fmt.Errorf("measuring policy: %w", err)
	}
	return nil
}

// measureDecisions records the hash of the decision log's newest entry, as
// the engine wrote it. The log is hash-chained, so this one measurement
// commits to every decision before it; a verifier holding the files checks
// them against it. Failures are logged: the pod is being torn down and there
// is no caller left to answer.
func measureDecisions(att *attestboot.Attestation, head string, log *slog.Logger) {
	if err := measureHead(att, head); err != nil {
		log.Error("decision log head not measured", "error", err)
	}
}

// measureHead records the decision log's head; the policy engine calls it
// after SetPolicy and before the log rotates, so files dropped by rotation
// (or by the host) still end at a measured hash. Not per decision: a
// verifier replays the whole measurement log in one bounded request. A
// no-op without a TEE.
func measureHead(att *attestboot.Attestation, head string) error {
	if head == "" || att.Events == nil {
		return nil
	}
	if err := att.Record(eventlog.DomainCocoon, eventlog.OpDecisionsHead, "sha256:"+head); err != nil {
		return fmt.Errorf("measuring the decision log head: %w", err)
	}
	return nil
}
