package api_test

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/api"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

// The decision log head is attested on demand: the SNP report (from
// go-sev-guest's fake device, no SEV-SNP here) carries
// SHA-512("cocoon/decisions/head/v1" 0x00 head 0x00 nonce) as report data.
func TestDecisionHeadEvidenceSNP(t *testing.T) {
	fake, err := kbstest.NewFakeSNP([]byte("host-data"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := attest.New(attest.Options{Root: t.TempDir(), SEVDevice: fake})
	if err != nil {
		t.Fatal(err)
	}
	dl, err := decisionlog.Open(filepath.Join(t.TempDir(), "decisions.log"), decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if _, err := dl.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "CreateContainerRequest"}); err != nil {
		t.Fatal(err)
	}
	h, err := api.NewHandler(api.Deps{Attester: a, DecisionHead: dl.Head}, api.ModeAttestation)
	if err != nil {
		t.Fatal(err)
	}
	nonce := "verifier-nonce-0123456789"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/cocoon/decisions/head?nonce="+nonce, nil))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var out struct {
		Head     string          `json:"head"`
		Nonce    string          `json:"nonce"`
		Tee      string          `json:"tee"`
		Evidence json.RawMessage `json:"evidence"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Head != dl.Head() || out.Nonce != nonce || out.Tee != attest.TeeSNP {
		t.Fatalf("answer %+v, head %s", out, dl.Head())
	}
	p, err := attest.ParseSNPEvidence(out.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	if err := kbstest.VerifySNP(p, fake.ARK()); err != nil {
		t.Fatal(err)
	}
	want := sha512.Sum512([]byte("cocoon/decisions/head/v1\x00" + dl.Head() + "\x00" + nonce))
	if got := attest.Bytes(p.Report.ReportData); !bytes.Equal(got, want[:]) {
		t.Fatalf("report_data %x, want %x", got, want)
	}
}

func TestDecisionHeadBadRequests(t *testing.T) {
	head := strings.Repeat("ab", 32)
	h, _ := api.NewHandler(api.Deps{Attester: attest.Sample{}, DecisionHead: func() string { return head }}, api.ModeAll)
	none, _ := api.NewHandler(api.Deps{Attester: attest.Sample{}}, api.ModeAll)
	res, _ := api.NewHandler(api.Deps{Attester: attest.Sample{}, DecisionHead: func() string { return head }}, api.ModeResource)
	cases := []struct {
		h    http.Handler
		path string
		want int
	}{
		{h, "/cocoon/decisions/head", 400},
		{h, "/cocoon/decisions/head?nonce=", 400},
		{h, "/cocoon/decisions/head?nonce=" + strings.Repeat("n", 65), 400},
		{h, "/cocoon/decisions/head?nonce=a&nonce=b", 400},
		{h, "/cocoon/decisions/head?nonce=abc", 200},
		{none, "/cocoon/decisions/head?nonce=abc", 503},
		{res, "/cocoon/decisions/head?nonce=abc", 403},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		c.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, c.path, nil))
		if w.Code != c.want {
			t.Errorf("GET %s = %d %q, want %d", c.path, w.Code, w.Body, c.want)
		}
	}
}
