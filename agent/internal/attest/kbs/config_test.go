package kbs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/cocoon-tee/cocoon/agent/internal/attest/kbs"
)

func TestParseConfig(t *testing.T) {
	aa := []byte("[token_configs]\n[token_configs.kbs]\nurl = \"http://10.0.0.1:8080\"\n")
	cdh := []byte(`
[kbc]
name = "cc_kbc"
url = "http://ignored:1"
[[credentials]]
resource_uri = "kbs:///default/test/file"
path = "/run/confidential-containers/cdh/kbs/test/file"
`)
	c, err := kbs.ParseConfig(aa, cdh)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "http://10.0.0.1:8080" || len(c.Credentials) != 1 {
		t.Fatalf("config %+v", c)
	}
	c, err = kbs.ParseConfig(nil, cdh)
	if err != nil || c.URL != "http://ignored:1" {
		t.Fatalf("cdh fallback %+v %v", c, err)
	}
	bad := map[string][2]string{
		"ftp url":         {"[token_configs.kbs]\nurl = \"ftp://x\"\n", ""},
		"bad toml":        {"[token_configs.kbs\n", ""},
		"offline kbc":     {"", "[kbc]\nname = \"offline_fs_kbc\"\nurl = \"\"\n"},
		"credential path": {"", "[[credentials]]\nresource_uri = \"kbs:///a/b/c\"\npath = \"/etc/passwd\"\n"},
		"credential ..":   {"", "[[credentials]]\nresource_uri = \"kbs:///a/b/c\"\npath = \"/run/confidential-containers/cdh/kbs/../../x\"\n"},
		"credential uri":  {"", "[[credentials]]\nresource_uri = \"kbs:///a/b\"\npath = \"/run/confidential-containers/cdh/kbs/x\"\n"},
		"bad cert":        {"[token_configs.kbs]\nurl = \"https://x\"\ncert = \"nope\"\n", ""},
	}
	for name, in := range bad {
		if _, err := kbs.ParseConfig([]byte(in[0]), []byte(in[1])); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseKBCParams(t *testing.T) {
	c, err := kbs.ParseKBCParams("cc_kbc::http://127.0.0.1:8080")
	if err != nil || c.URL != "http://127.0.0.1:8080" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"cc_kbc", "offline_fs_kbc::null", "cc_kbc::notaurl", "cc_kbc::http://a::b"} {
		if _, err := kbs.ParseKBCParams(bad); err == nil {
			t.Errorf("ParseKBCParams(%q) accepted", bad)
		}
	}
}

func TestParseResourceURI(t *testing.T) {
	r, err := kbs.ParseResourceURI("kbs:///default/key/1")
	if err != nil || r.Path() != "default/key/1" || r.String() != "kbs:///default/key/1" {
		t.Fatalf("%+v %v", r, err)
	}
	if r, err := kbs.ParseResourceURI("kbs://kbs.example/repo/type/tag?x=1"); err != nil || r.Query != "x=1" {
		t.Fatalf("with host and query: %+v %v", r, err)
	}
	for _, bad := range []string{"", "kbs:", "kbs:///", "kbs:///a//c", "kbs:///a/b/c/", "kbs:///a/b/..", "kbs:///a/b/c#f", "kbs:a/b/c", "kbs:///a/b/c d", strings.Repeat("a", 3000)} {
		if _, err := kbs.ParseResourceURI(bad); err == nil {
			t.Errorf("ParseResourceURI(%q) accepted", bad)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("[token_configs.kbs]\nurl = \"http://a\"\n"), []byte("[[credentials]]\nresource_uri = \"kbs:///a/b/c\"\npath = \"/run/confidential-containers/cdh/kbs/x\"\n"))
	f.Fuzz(func(t *testing.T, aa, cdh []byte) {
		c, err := kbs.ParseConfig(aa, cdh)
		if err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("ParseConfig returned an invalid config: %v", err)
			}
		}
	})
}

func FuzzParseResourceURI(f *testing.F) {
	f.Add("kbs:///default/key/1")
	f.Add("kbs://h/a/b/c?q")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := kbs.ParseResourceURI(s)
		if err != nil {
			return
		}
		if strings.Contains(r.Path(), "..") && (r.Repository == ".." || r.Type == ".." || r.Tag == "..") {
			t.Fatalf("dot-dot segment accepted: %q", s)
		}
		again, err := kbs.ParseResourceURI(r.String())
		if err != nil || again != r {
			t.Fatalf("round trip %q -> %q: %v", s, r.String(), err)
		}
	})
}

func FuzzDecryptResource(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	enc, _ := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.ECDH_ES_A256KW, Key: &k.PublicKey}, nil)
	obj, _ := enc.Encrypt([]byte("secret"))
	f.Add([]byte(obj.FullSerialize()))
	f.Add([]byte(`{"protected":"e30","encrypted_key":"AA","iv":"AA","ciphertext":"AA","tag":"AA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = kbs.DecryptResource(data, k)
	})
}

func FuzzParseToken(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjF9.sig")
	f.Fuzz(func(t *testing.T, s string) { _, _ = kbs.ParseToken(s) })
}
