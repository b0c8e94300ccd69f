package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/api"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/kbs"
)

// serve starts the real API on 127.0.0.1 against the test KBS.
func serve(t *testing.T, mode string) (base string, s *kbstest.Server) {
	t.Helper()
	s, err := kbstest.New(kbstest.Options{Resources: map[string][]byte{"default/cfg/app": []byte("config-bytes")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	a, _ := attest.New(attest.Options{Root: t.TempDir(), AllowSample: true})
	c, err := kbs.New(kbs.Options{Config: kbs.Config{URL: s.URL}, Attester: a, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.NewHandler(api.Deps{Resources: c, Tokens: c, Attester: a}, mode)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, l, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + l.Addr().String(), s
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWorkloadAPIAll(t *testing.T) {
	base, _ := serve(t, api.ModeAll)
	if code, body := get(t, base+"/cdh/resource/default/cfg/app"); code != 200 || body != "config-bytes" {
		t.Fatalf("resource: %d %q", code, body)
	}
	code, body := get(t, base+"/aa/token?token_type=kbs")
	var tok struct {
		Token      string `json:"token"`
		TeeKeypair string `json:"tee_keypair"`
	}
	if err := json.Unmarshal([]byte(body), &tok); code != 200 || err != nil || strings.Count(tok.Token, ".") != 2 || !strings.Contains(tok.TeeKeypair, "PRIVATE KEY") {
		t.Fatalf("token: %d %q", code, body)
	}
	code, body = get(t, base+"/aa/evidence?runtime_data=hello")
	var ev attest.SampleEvidence
	if err := json.Unmarshal([]byte(body), &ev); code != 200 || err != nil || ev.ReportData != base64.StdEncoding.EncodeToString([]byte("hello")) {
		t.Fatalf("evidence: %d %q", code, body)
	}
	code, body = get(t, base+"/aa/evidence?encoding=base64&runtime_data="+base64.RawURLEncoding.EncodeToString([]byte{1, 2, 3}))
	if err := json.Unmarshal([]byte(body), &ev); code != 200 || err != nil || ev.ReportData != "AQID" {
		t.Fatalf("evidence base64: %d %q", code, body)
	}
}

func TestWorkloadAPIBadRequests(t *testing.T) {
	base, _ := serve(t, api.ModeAll)
	cases := map[string]int{
		"/cdh/resource/default/cfg":                            400,
		"/cdh/resource/default/cfg/app/extra":                  400,
		"/cdh/resource/default/..%2f/app":                      400,
		"/cdh/resource/default/cfg/missing":                    404,
		"/aa/token":                                            400,
		"/aa/token?token_type=coco_as":                         400,
		"/aa/evidence":                                         400,
		"/aa/evidence?runtime_data=" + strings.Repeat("x", 65): 400,
		"/aa/evidence?runtime_data=a&encoding=hex":             400,
		"/aa/evidence?runtime_data=!!&encoding=base64":         400,
		"/aa/evidence?runtime_data=a&runtime_data=b":           400,
		"/nope": 404,
		"/cdh/resource/" + url.PathEscape("a b") + "/c/d": 400,
	}
	for p, want := range cases {
		if code, body := get(t, base+p); code != want {
			t.Errorf("GET %s = %d %q, want %d", p, code, body, want)
		}
	}
	resp, err := http.Post(base+"/aa/token?token_type=kbs", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
}

func TestWorkloadAPIModes(t *testing.T) {
	base, _ := serve(t, api.ModeResource)
	if code, _ := get(t, base+"/aa/token?token_type=kbs"); code != 403 {
		t.Fatalf("token in resource mode: %d", code)
	}
	if code, _ := get(t, base+"/cdh/resource/default/cfg/app"); code != 200 {
		t.Fatalf("resource in resource mode: %d", code)
	}
	base2, _ := serve(t, api.ModeAttestation)
	if code, _ := get(t, base2+"/cdh/resource/default/cfg/app"); code != 403 {
		t.Fatalf("resource in attestation mode: %d", code)
	}
	if _, err := api.NewHandler(api.Deps{}, "everything"); err == nil {
		t.Fatal("unknown mode accepted")
	}
}
