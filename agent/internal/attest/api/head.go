package api

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/cocoon-tee/cocoon/agent/attest"
)

// HeadPath answers GET ?nonce=N with the decision log's current head and
// TEE evidence whose report data is HeadReportData(head, N). The host may
// never send DestroySandbox (when the head is also measured), so a verifier
// asks the workload for a fresh, nonce-bound head at any time and checks
// the log files it is given against it.
const HeadPath = "/cocoon/decisions/head"

// headDomain separates this report data from any other use of the TEE's
// report-data field.
const headDomain = "cocoon/decisions/head/v1"

// HeadReportData is SHA-512(headDomain 0x00 head 0x00 nonce): 64 bytes,
// the whole report-data field of TDX and SNP. head is 64 hex digits, so
// the fields cannot run into each other.
func HeadReportData(head string, nonce []byte) []byte {
	h := sha512.New()
	h.Write([]byte(headDomain))
	h.Write([]byte{0})
	h.Write([]byte(head))
	h.Write([]byte{0})
	h.Write(nonce)
	return h.Sum(nil)
}

// HeadAnswer is the JSON body of a HeadPath answer.
type HeadAnswer struct {
	Head     string          `json:"head"`
	Nonce    string          `json:"nonce"`
	Tee      string          `json:"tee"`
	Evidence json.RawMessage `json:"evidence"`
}

func (h *handler) decisionHead(w http.ResponseWriter, r *http.Request) {
	raw, ok := r.URL.Query()["nonce"]
	if !ok || len(raw) != 1 || raw[0] == "" {
		http.Error(w, "BAD REQUEST: nonce is required once", http.StatusBadRequest)
		return
	}
	nonce := raw[0]
	if len(nonce) > attest.MaxReportData {
		http.Error(w, fmt.Sprintf("BAD REQUEST: nonce is %d bytes, at most %d", len(nonce), attest.MaxReportData), http.StatusBadRequest)
		return
	}
	if h.d.Attester == nil {
		http.Error(w, "no attester", http.StatusServiceUnavailable)
		return
	}
	if h.d.DecisionHead == nil {
		http.Error(w, "no decision log", http.StatusServiceUnavailable)
		return
	}
	head := h.d.DecisionHead()
	if head == "" {
		http.Error(w, "the decision log has no entry yet", http.StatusServiceUnavailable)
		return
	}
	ev, err := h.d.Attester.Evidence(r.Context(), HeadReportData(head, []byte(nonce)))
	if err != nil {
		h.fail(w, "decision head evidence", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(HeadAnswer{Head: head, Nonce: nonce, Tee: h.d.Attester.Tee(), Evidence: ev})
}
