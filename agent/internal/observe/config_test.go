package observe

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
)

func pkix(t testing.TB, k any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func keys(t testing.TB) (seal, exec string) {
	sk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ek, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pkix(t, sk.PublicKey()), pkix(t, ek)
}

func TestParseDefaultsFollowKeys(t *testing.T) {
	seal, exec := keys(t)
	c, err := Parse([]byte(`
[owner]
seal_key = "` + seal + `"
exec_keys = ["` + exec + `"]

[observability]
metrics = "aggregate"

[observability.containers.debug]
logs = "plain"

[observability.containers.locked]
logs = "deny"
exec = "deny"
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.For("app"); got != (Modes{LogsSeal, ExecGrant}) {
		t.Errorf("app: %+v, want seal and grant from the keys", got)
	}
	if got := c.For("debug"); got != (Modes{LogsPlain, ExecGrant}) {
		t.Errorf("debug: %+v, want plain logs and the default exec", got)
	}
	if got := c.For("locked"); got != (Modes{LogsDeny, ExecDeny}) {
		t.Errorf("locked: %+v", got)
	}
	if got := c.For(""); got != c.Defaults {
		t.Errorf("unnamed container: %+v, want the defaults", got)
	}
	if c.Metrics != MetricsAggregate || c.SealKey == nil || len(c.ExecKeys) != 1 {
		t.Errorf("config %+v", c)
	}
}

func TestNoConfigIsTheOldBehaviour(t *testing.T) {
	c, err := FromInitdata(map[string]string{"policy.rego": "package agent_policy"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.For("x"); got != (Modes{LogsPlain, ExecPolicy}) || c.Metrics != MetricsFull {
		t.Errorf("defaults %+v metrics %s", got, c.Metrics)
	}
}

func TestParseRefusals(t *testing.T) {
	seal, exec := keys(t)
	for name, tc := range map[string]struct{ text, want string }{
		"seal without key":   {`[observability]` + "\n" + `logs = "seal"`, `needs owner.seal_key`},
		"grant without keys": {"[observability.containers.a]\nexec = \"grant\"", `needs owner.exec_keys`},
		"unknown mode":       {"[observability]\nlogs = \"maybe\"", `want seal, plain or deny`},
		"unknown metrics":    {"[observability]\nmetrics = \"some\"", `want full, aggregate or none`},
		"unknown key":        {"[owner]\nseal_kye = \"x\"", `unknown keys owner.seal_kye`},
		"seal key is exec":   {"[owner]\nseal_key = \"" + exec + "\"", `owner.seal_key`},
		"exec key is seal":   {"[owner]\nexec_keys = [\"" + seal + "\"]", `owner.exec_keys[0]`},
		"not base64":         {"[owner]\nseal_key = \"!!\"", `owner.seal_key`},
		"bad toml":           {"[owner", `cocoon.toml`},
		"too large":          {strings.Repeat("#", MaxConfig+1), `limit`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParse: any input parses or is refused, never panics, and a parsed
// config never names a mode without its key.
func FuzzParse(f *testing.F) {
	seal, exec := keys(f)
	f.Add([]byte("[owner]\nseal_key = \"" + seal + "\"\nexec_keys = [\"" + exec + "\"]\n[observability.containers.x]\nlogs = \"plain\"\n"))
	f.Add([]byte("[observability]\nmetrics = \"none\"\nlogs = \"deny\"\nexec = \"deny\"\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		for _, m := range append([]Modes{c.Defaults}, func() (ms []Modes) {
			for _, m := range c.Containers {
				ms = append(ms, m)
			}
			return
		}()...) {
			if (m.Logs == LogsSeal && c.SealKey == nil) || (m.Exec == ExecGrant && len(c.ExecKeys) == 0) {
				t.Fatalf("mode without key: %+v", m)
			}
			if m.Logs == "" || m.Exec == "" {
				t.Fatalf("unset mode: %+v", m)
			}
		}
	})
}
