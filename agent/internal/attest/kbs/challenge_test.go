package kbs

import (
	"encoding/json"
	"testing"
)

// The challenge shapes Trustee sends (kbs/src/attestation/mod.rs,
// generate_extra_params: the string "" for every TEE but IBM SE, an object
// with selected-hash-algorithm for SE) and shapes it never sends.
func TestChallengeSelectedHash(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  string
		ok    bool
	}{
		{`""`, DefaultHashAlgorithm, true},
		{``, DefaultHashAlgorithm, true},
		{`null`, DefaultHashAlgorithm, true},
		{`{}`, DefaultHashAlgorithm, true},
		{`{"selected-hash-algorithm":"SHA512"}`, "sha512", true},
		{`{"selected-hash-algorithm":7}`, "", false},
		{`{"selected-hash-algorithm":""}`, "", false},
		{`"sha512"`, "", false},
		{`42`, "", false},
		{`[]`, "", false},
	} {
		body := `{"nonce":"n"`
		if tc.extra != "" {
			body += `,"extra-params":` + tc.extra
		}
		var ch challenge
		if err := json.Unmarshal([]byte(body+"}"), &ch); err != nil {
			t.Fatalf("%s: %v", tc.extra, err)
		}
		got, err := ch.selectedHash()
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("extra-params %s: %q, %v; want %q, ok=%v", tc.extra, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzChallengeSelectedHash(f *testing.F) {
	for _, s := range []string{`""`, `{"selected-hash-algorithm":"sha384"}`, `null`, `{"selected-hash-algorithm":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, extra []byte) {
		ch := challenge{ExtraParams: extra}
		if alg, err := ch.selectedHash(); err == nil && alg == "" {
			t.Errorf("extra-params %q: no algorithm and no error", extra)
		}
	})
}
