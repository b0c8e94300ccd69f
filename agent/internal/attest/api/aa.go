package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
)

// Paths of guest-components' api-server-rest attestation group
// (api-server-rest/src/client/aa.rs:18-24).
const (
	AdditionalEvidencePath = "/aa/additional-evidence"
	AAELPath               = "/aa/aael"
)

// maxAAELBody bounds a POST /aa/aael body: one event is at most 64 KiB of
// text (eventlog), and JSON escaping may double that.
const maxAAELBody = 128 << 10

// Recorder appends an event to the runtime measurement log.
type Recorder interface {
	Record(domain, operation, content string) error
}

// reserved reports whether domain is one of the agent's own measurement
// domains. A workload may measure anything else, but an entry under these
// would read to a verifier as the agent's (a SetPolicy, an image pull).
func reserved(domain string) bool {
	return domain == eventlog.DomainCocoon || domain == eventlog.DomainCoCo
}

// The answers guest-components gives for each runtime measurement result
// (api-server-rest/src/client/aa.rs:124-133), byte for byte.
const (
	aaelOK           = `{"success":"true"}`
	aaelNotSupported = `{"success":"false","message": "The platform does not support runtime measurement"}`
	aaelNotEnabled   = `{"success":"false","message": "Attestation Agent does not enable eventlog recording"}`
)

// additionalEvidence answers GET /aa/additional-evidence?runtime_data=...
// as the attestation agent does with no additional attesters configured:
// 200 and an empty body (attestation-agent/src/lib.rs
// get_additional_evidence). cocoon has none (no device attestation yet);
// the query is still checked as /aa/evidence's is.
func (h *handler) additionalEvidence(w http.ResponseWriter, r *http.Request) {
	if _, ok := runtimeData(w, r); !ok {
		return
	}
	if h.d.Attester == nil {
		http.Error(w, "no attester", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
}

// aaelEvent is the body of POST /aa/aael (api-server-rest aa.rs AaelEvent):
// all three members are required strings; unknown members are ignored, as
// serde does.
type aaelEvent struct {
	Domain    *string `json:"domain"`
	Operation *string `json:"operation"`
	Content   *string `json:"content"`
}

// ParseAAEL decodes and checks a POST /aa/aael body: a single JSON object
// with string domain, operation and content that make a valid event
// (eventlog.Encode: no spaces in domain and operation, no newline, at most
// 64 KiB).
func ParseAAEL(body []byte) (domain, operation, content string, err error) {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	var ev aaelEvent
	if err := dec.Decode(&ev); err != nil {
		return "", "", "", fmt.Errorf("AAEL event is not a JSON object {domain, operation, content}: %w", err)
	}
	if dec.More() {
		return "", "", "", errors.New("AAEL event: data after the JSON object")
	}
	if ev.Domain == nil || ev.Operation == nil || ev.Content == nil {
		return "", "", "", errors.New("AAEL event needs string domain, operation and content")
	}
	if _, _, err := eventlog.Encode(*ev.Domain, *ev.Operation, *ev.Content); err != nil {
		return "", "", "", err
	}
	return *ev.Domain, *ev.Operation, *ev.Content, nil
}

// aael answers POST /aa/aael. Results follow the attestation agent's
// extend_runtime_measurement: no log → NotEnabled, no register to extend
// (SNP, sample) → NotSupported, both 200 with success "false" and nothing
// written. A bad body is 400 (api-server-rest answers 500).
func (h *handler) aael(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAAELBody))
	if err != nil {
		http.Error(w, fmt.Sprintf("BAD REQUEST: body larger than %d bytes or unreadable", maxAAELBody), http.StatusBadRequest)
		return
	}
	domain, op, content, err := ParseAAEL(body)
	if err != nil {
		http.Error(w, "BAD REQUEST: "+err.Error(), http.StatusBadRequest)
		return
	}
	if reserved(domain) {
		http.Error(w, fmt.Sprintf("FORBIDDEN: domain %q is reserved for the agent's own measurements", domain), http.StatusForbidden)
		return
	}
	answer := aaelOK
	switch {
	case h.d.Events == nil:
		answer = aaelNotEnabled
	case !h.d.EventsMeasured:
		answer = aaelNotSupported
	default:
		if err := h.d.Events.Record(domain, op, content); err != nil {
			h.fail(w, "aael", err)
			return
		}
		h.d.Log.Info("workload measured an event", "domain", domain, "operation", op)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, answer)
}

// runtimeData reads runtime_data (required once; raw, or URL-safe base64
// without padding when encoding=base64, as api-server-rest's
// decode_runtime_data) and bounds it to a report-data field. It answers
// 400 itself when the query is bad.
func runtimeData(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	q := r.URL.Query()
	raw, ok := q["runtime_data"]
	if !ok || len(raw) != 1 {
		http.Error(w, "BAD REQUEST: runtime_data is required once", http.StatusBadRequest)
		return nil, false
	}
	rd := []byte(raw[0])
	switch enc := q.Get("encoding"); enc {
	case "":
	case "base64":
		var err error
		if rd, err = base64URL.DecodeString(raw[0]); err != nil {
			http.Error(w, "BAD REQUEST: runtime_data is not URL-safe base64 without padding", http.StatusBadRequest)
			return nil, false
		}
	default:
		http.Error(w, fmt.Sprintf("BAD REQUEST: unsupported encoding %q", enc), http.StatusBadRequest)
		return nil, false
	}
	if len(rd) > attest.MaxReportData {
		http.Error(w, fmt.Sprintf("BAD REQUEST: runtime_data is %d bytes, at most %d", len(rd), attest.MaxReportData), http.StatusBadRequest)
		return nil, false
	}
	return rd, true
}
