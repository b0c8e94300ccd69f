package api_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/api"
)

func FuzzHandler(f *testing.F) {
	f.Add("/cdh/resource/a/b/c", "x=1")
	f.Add("/aa/evidence", "runtime_data=abc&encoding=base64")
	f.Add("/aa/token", "token_type=kbs")
	f.Add(api.HeadPath, "nonce=abc")
	f.Add(api.AdditionalEvidencePath, "runtime_data=abc")
	f.Add(api.AAELPath, "")
	head := func() string { return "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" }
	h, err := api.NewHandler(api.Deps{Attester: attest.Sample{}, DecisionHead: head}, api.ModeAll)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL = &url.URL{Path: path, RawQuery: query}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 200, 400, 403, 404, 405, 503:
		default:
			t.Fatalf("GET %q?%q = %d", path, query, w.Code)
		}
	})
}

// FuzzParseAAEL: any POST /aa/aael body is an event that eventlog accepts,
// or an error; never a panic.
func FuzzParseAAEL(f *testing.F) {
	f.Add([]byte(`{"domain":"d","operation":"o","content":"c"}`))
	f.Add([]byte(`{"domain":"a b","operation":"o","content":"c"}`))
	f.Add([]byte(`{"domain":"d","operation":"o","content":"x\ny"} {}`))
	f.Add([]byte(`{"domain":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, o, c, err := api.ParseAAEL(body)
		if err != nil {
			return
		}
		if _, _, err := eventlog.Encode(d, o, c); err != nil {
			t.Fatalf("ParseAAEL accepted an event eventlog refuses: %v", err)
		}
	})
}
