package api_test

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/fakertmr"
	"github.com/google/go-configfs-tsm/rtmr"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/api"
)

func fakeSNPAttester(t *testing.T) attest.Attester {
	t.Helper()
	fake, err := kbstest.NewFakeSNP([]byte("host-data"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := attest.New(attest.Options{Root: t.TempDir(), SEVDevice: fake})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func call(t *testing.T, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, strings.NewReader(body)))
	return w
}

// GET /aa/additional-evidence answers what guest-components' attestation
// agent answers without additional attesters (GPUs): 200 with an empty
// octet-stream (attestation-agent/src/lib.rs get_additional_evidence;
// api-server-rest/src/router.rs:197-220). Its runtime_data is read as for
// /aa/evidence (utils.rs decode_runtime_data) and bounded the same way.
// The TEE is go-sev-guest's fake SNP device.
func TestAdditionalEvidence(t *testing.T) {
	h, err := api.NewHandler(api.Deps{Attester: fakeSNPAttester(t)}, api.ModeAttestation)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"runtime_data=nonce", "encoding=base64&runtime_data=" + base64.RawURLEncoding.EncodeToString([]byte{1, 2})} {
		w := call(t, h, "GET", "/aa/additional-evidence?"+q, "")
		if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("?%s = %d %q (%s)", q, w.Code, w.Body, w.Header().Get("Content-Type"))
		}
	}
	for q, want := range map[string]int{
		"":                              400,
		"runtime_data=a&runtime_data=b": 400,
		"runtime_data=" + strings.Repeat("x", 65): 400,
		"runtime_data=!!&encoding=base64":         400,
		"runtime_data=a&encoding=hex":             400,
	} {
		if w := call(t, h, "GET", "/aa/additional-evidence?"+q, ""); w.Code != want {
			t.Errorf("?%s = %d %q, want %d", q, w.Code, w.Body, want)
		}
	}
	if w := call(t, h, "POST", "/aa/additional-evidence?runtime_data=a", ""); w.Code != 405 {
		t.Errorf("POST = %d", w.Code)
	}
	res, _ := api.NewHandler(api.Deps{Attester: fakeSNPAttester(t)}, api.ModeResource)
	if w := call(t, res, "GET", "/aa/additional-evidence?runtime_data=a", ""); w.Code != 403 {
		t.Errorf("resource mode: %d", w.Code)
	}
}

// POST /aa/aael appends {domain, operation, content} to the runtime
// measurement log (api-server-rest/src/client/aa.rs:30-35 and 100-136).
// On a register-backed log (go-configfs-tsm's fake RTMR: no TDX here) the
// event is extended and logged and the answer is {"success":"true"}.
func TestAAELRecordsEvent(t *testing.T) {
	fake := fakertmr.CreateRtmrSubsystem(t.TempDir())
	l, err := eventlog.Open(filepath.Join(t.TempDir(), "eventlog"), eventlog.ConfigfsRTMR{Client: fake, Index: eventlog.RTMRIndex})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h, err := api.NewHandler(api.Deps{Attester: fakeSNPAttester(t), Events: l, EventsMeasured: true}, api.ModeAll)
	if err != nil {
		t.Fatal(err)
	}
	w := call(t, h, "POST", "/aa/aael", `{"domain":"example.com/app","operation":"LoadModel","content":"sha256:abcd with spaces"}`)
	if w.Code != 200 || w.Body.String() != `{"success":"true"}` || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("aael = %d %q", w.Code, w.Body)
	}
	entry, digest, err := eventlog.Encode("example.com/app", "LoadModel", "sha256:abcd with spaces")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Entries(); !bytes.Equal(got, entry) {
		t.Fatalf("log holds %x, want %x", got, entry)
	}
	want := sha512.Sum384(append(make([]byte, 48), digest...))
	if got, err := rtmr.GetDigest(fake, eventlog.RTMRIndex); err != nil || !bytes.Equal(got.Digest, want[:]) {
		t.Fatalf("RTMR%d = %x (%v), want %x", eventlog.RTMRIndex, got, err, want)
	}
}

// The answers guest-components gives when nothing is measured: no event log
// (NotEnabled) and a TEE without runtime measurement registers such as SNP
// (NotSupported); both 200 with success "false" (aa.rs:124-133). Nothing is
// written either way.
func TestAAELNotMeasured(t *testing.T) {
	l, err := eventlog.Open(filepath.Join(t.TempDir(), "eventlog"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	body := `{"domain":"example.com/app","operation":"Op","content":"c"}`
	for _, c := range []struct {
		deps api.Deps
		want string
	}{
		{api.Deps{Attester: fakeSNPAttester(t)}, `{"success":"false","message": "Attestation Agent does not enable eventlog recording"}`},
		{api.Deps{Attester: fakeSNPAttester(t), Events: l}, `{"success":"false","message": "The platform does not support runtime measurement"}`},
	} {
		h, _ := api.NewHandler(c.deps, api.ModeAttestation)
		if w := call(t, h, "POST", "/aa/aael", body); w.Code != 200 || w.Body.String() != c.want {
			t.Errorf("aael = %d %q, want %s", w.Code, w.Body, c.want)
		}
	}
	if got, _ := l.Entries(); len(got) != 0 {
		t.Fatalf("unmeasured platform logged %d bytes", len(got))
	}
}

// Every input is bounded and checked before anything is recorded; the
// agent's own domains are reserved, so a workload cannot forge a policy or
// image-pull measurement.
func TestAAELRefusals(t *testing.T) {
	l, err := eventlog.Open(filepath.Join(t.TempDir(), "eventlog"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h, _ := api.NewHandler(api.Deps{Attester: fakeSNPAttester(t), Events: l, EventsMeasured: true}, api.ModeAll)
	cases := map[string]int{
		``:                               400,
		`[]`:                             400,
		`{"domain":"d","operation":"o"}`: 400,
		`{"domain":"d","operation":"o","content":1}`:                                                     400,
		`{"domain":"a b","operation":"o","content":"c"}`:                                                 400,
		`{"domain":"d","operation":"o\n","content":"c"}`:                                                 400,
		`{"domain":"d","operation":"o","content":"line\nbreak"}`:                                         400,
		`{"domain":"","operation":"o","content":"c"}`:                                                    400,
		`{"domain":"d","operation":"o","content":"c"} {}`:                                                400,
		`{"domain":"d","operation":"o","content":"` + strings.Repeat("x", 70<<10) + `"}`:                 400,
		`{"domain":"github.com/cocoon-tee/cocoon","operation":"SetPolicy","content":"sha256:00"}`:        403,
		`{"domain":"github.com/confidential-containers","operation":"PullImage","content":"x@sha256:0"}`: 403,
	}
	for body, want := range cases {
		if w := call(t, h, "POST", "/aa/aael", body); w.Code != want {
			t.Errorf("POST %.80q = %d %q, want %d", body, w.Code, w.Body, want)
		}
	}
	if w := call(t, h, "POST", "/aa/aael", strings.Repeat(" ", 200<<10)+"{}"); w.Code != 400 {
		t.Errorf("oversized body = %d", w.Code)
	}
	if w := call(t, h, "GET", "/aa/aael", ""); w.Code != 405 {
		t.Errorf("GET /aa/aael = %d", w.Code)
	}
	if got, _ := l.Entries(); len(got) != 0 {
		t.Fatalf("refused events logged %d bytes", len(got))
	}
	res, _ := api.NewHandler(api.Deps{Attester: fakeSNPAttester(t), Events: l, EventsMeasured: true}, api.ModeResource)
	if w := call(t, res, "POST", "/aa/aael", `{"domain":"d","operation":"o","content":"c"}`); w.Code != 403 {
		t.Errorf("resource mode: %d", w.Code)
	}
}
