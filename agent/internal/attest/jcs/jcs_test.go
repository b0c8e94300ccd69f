package jcs

import (
	"encoding/json"
	"testing"
)

func TestTransform(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"b":1,"a":2}`, `{"a":2,"b":1}`},
		{` { "nonce" : "abc", "tee-pubkey" : {"y":"Y","x":"X","kty":"EC"} , "additional-evidence":""}`,
			`{"additional-evidence":"","nonce":"abc","tee-pubkey":{"kty":"EC","x":"X","y":"Y"}}`},
		{`[1.0, 1e21, 1e-7, 0.000001, -0, 123456789012345680000, 4.5, 1E+2]`,
			`[1,1e+21,1e-7,0.000001,0,123456789012345680000,4.5,100]`},
		{`"\u00e9\u0001\/"`, "\"\u00e9\\u0001/\""},
		// RFC 8785 §3.2.3 example: sort by UTF-16 code units.
		{`{"\u20ac":1,"\r":2,"\ufb33":3,"1":4,"\ud83d\ude00":5,"\u0080":6,"\u00f6":7}`,
			"{\"\\r\":2,\"1\":4,\"\u0080\":6,\"\u00f6\":7,\"\u20ac\":1,\"\U0001F600\":5,\"\ufb33\":3}"},
		{`{"a":[true,false,null,{}]}`, `{"a":[true,false,null,{}]}`},
		{`333333333.33333329`, `333333333.3333333`},
		{`1E30`, `1e+30`},
		{`4.50`, `4.5`},
		{`2e-3`, `0.002`},
		{`0.000001`, `0.000001`},
		{`0.0000001`, `1e-7`},
	}
	for _, c := range cases {
		got, err := Transform([]byte(c.in))
		if err != nil {
			t.Fatalf("Transform(%s): %v", c.in, err)
		}
		if string(got) != c.want {
			t.Errorf("Transform(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestTransformRejects(t *testing.T) {
	for _, in := range []string{`{"a":1,"a":2}`, `{"a":1} x`, "\"\xff\"", `{`, `1e400`, ``, `[1,]`} {
		if _, err := Transform([]byte(in)); err == nil {
			t.Errorf("Transform(%q) succeeded, want error", in)
		}
	}
}

func FuzzTransform(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1,2.5,"x"]}`, `"\u0000"`, `1e-7`, `{"a":{"b":{"c":null}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Transform(data)
		if err != nil {
			return
		}
		// Canonical output is valid JSON and a fixed point.
		if !json.Valid(out) {
			t.Fatalf("output is not valid JSON: %q", out)
		}
		again, err := Transform(out)
		if err != nil {
			t.Fatalf("canonical output rejected: %v", err)
		}
		if string(again) != string(out) {
			t.Fatalf("not idempotent: %q -> %q", out, again)
		}
	})
}
