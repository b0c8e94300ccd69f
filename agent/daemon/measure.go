package daemon

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"

	attestboot "github.com/cocoon-tee/cocoon/agent/attest/boot"
	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

// maxDecisionLog bounds how much of the live decision log is read to find
// its head; the policy engine rotates the file well below this.
const maxDecisionLog = 64 << 20

// measurePolicy records a policy's sha256 in the runtime measurement log, so
// a verifier replaying the log knows which policy guarded the pod (a no-op
// when attestation is disabled).
func measurePolicy(att *attestboot.Attestation, op, digest string) error {
	if err := att.Record(eventlog.DomainCocoon, op, "sha256:"+digest); err != nil {
		return fmt.Errorf("measuring policy: %w", err)
	}
	return nil
}

// measureDecisions records the hash of the decision log's last entry. The
// log is hash-chained, so this one measurement commits to every decision
// made before it; a verifier holding the files can check them against it.
// Failures are logged: the pod is being torn down and there is no caller
// left to answer.
func measureDecisions(att *attestboot.Attestation, path string, log *slog.Logger) {
	if path == "" || att.Events == nil {
		return
	}
	head, err := decisionLogHead(path)
	if err != nil {
		log.Error("decision log head not measured", "error", err)
		return
	}
	if err := att.Record(eventlog.DomainCocoon, eventlog.OpDecisionsHead, "sha256:"+head); err != nil {
		log.Error("decision log head not measured", "error", err)
	}
}

// decisionLogHead verifies the live decision log file at path and returns
// the hash of its last complete entry. An entry being appended concurrently
// (no newline yet) is not part of the head.
func decisionLogHead(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("decision log: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDecisionLog+1))
	if err != nil {
		return "", fmt.Errorf("decision log: %w", err)
	}
	if len(b) > maxDecisionLog {
		return "", fmt.Errorf("decision log %s is larger than %d bytes", path, maxDecisionLog)
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return "", fmt.Errorf("decision log %s has no complete entry", path)
	}
	res, err := decisionlog.Verify([]decisionlog.Source{{Name: path, R: bytes.NewReader(b[:end+1])}})
	if err != nil {
		return "", fmt.Errorf("decision log: %w", err)
	}
	return res.LastHash, nil
}
