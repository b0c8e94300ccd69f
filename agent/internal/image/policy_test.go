package image

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"go.yaml.in/yaml/v3"
)

func TestResolveKeyPaths(t *testing.T) {
	kbs := memResources{"kbs:///default/cosign-public-key/test": []byte("PEM")}
	raw := []byte(`{"default":[{"type":"sigstoreSigned","keyPath":"kbs:///default/cosign-public-key/test"}],
	  "transports":{"docker":{"a/b":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/etc/local.gpg"},{"type":"sigstoreSigned","keyPath":"kbs:///default/cosign-public-key/test"}]}}}`)
	got, err := resolveKeyPaths(context.Background(), raw, kbs)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Default    []map[string]string
		Transports map[string]map[string][]map[string]string
	}
	if err := json.Unmarshal(got, &doc); err != nil {
		t.Fatal(err)
	}
	if r := doc.Default[0]; r["keyData"] != "UEVN" || r["keyPath"] != "" {
		t.Errorf("default: %v", r)
	}
	rs := doc.Transports["docker"]["a/b"]
	if rs[0]["keyPath"] != "/etc/local.gpg" || rs[0]["keyData"] != "" || rs[1]["keyData"] != "UEVN" {
		t.Errorf("transports: %v", rs)
	}
	for name, c := range map[string]struct {
		doc   string
		class func(error) bool
	}{
		"unknown key":  {`{"default":[{"type":"sigstoreSigned","keyPath":"kbs:///x/y/z"}]}`, errdefs.IsNotFound},
		"both":         {`{"default":[{"type":"sigstoreSigned","keyPath":"kbs:///x/y/z","keyData":"QQ=="}]}`, errdefs.IsInvalidArgument},
		"not json":     {`{`, errdefs.IsInvalidArgument},
		"bad shape":    {`{"transports":{"docker":[]}}`, errdefs.IsInvalidArgument},
		"bad defaults": {`{"default":{}}`, errdefs.IsInvalidArgument},
	} {
		if _, err := resolveKeyPaths(context.Background(), []byte(c.doc), kbs); !c.class(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSigstoreAttachmentsByDefault(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want bool
	}{
		{"", true},
		{"docker:\n  r.example/ns:\n    lookaside: https://sigs\n", true},
		{"default-docker:\n  lookaside: https://sigs\n", true},
		{"default-docker:\n  use-sigstore-attachments: false\n", false},
	} {
		out, err := sigstoreAttachmentsByDefault([]byte(c.doc))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Default struct {
				Attach    bool   `yaml:"use-sigstore-attachments"`
				Lookaside string `yaml:"lookaside"`
			} `yaml:"default-docker"`
			Docker map[string]any `yaml:"docker"`
		}
		if err := yaml.Unmarshal(out, &m); err != nil || m.Default.Attach != c.want {
			t.Errorf("%q -> %q: %v", c.doc, out, err)
		}
		if strings.Contains(c.doc, "lookaside") && !strings.Contains(string(out), "https://sigs") {
			t.Errorf("%q lost its lookaside: %q", c.doc, out)
		}
	}
	if _, err := sigstoreAttachmentsByDefault([]byte("default-docker: 3\n")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("scalar default-docker: %v", err)
	}
}

func FuzzResolveKeyPaths(f *testing.F) {
	f.Add([]byte(`{"default":[{"type":"sigstoreSigned","keyPath":"kbs:///a/b/c"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = resolveKeyPaths(context.Background(), raw, memResources{"kbs:///a/b/c": []byte("k")})
	})
}

func FuzzSigstoreAttachmentsByDefault(f *testing.F) {
	f.Add([]byte("default-docker:\n  lookaside: https://x\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		_, _ = sigstoreAttachmentsByDefault(doc)
	})
}
