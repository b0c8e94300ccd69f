package sandbox_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/internal/observe"
	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestGrantRecordsForgotten: the record that an exec came from a grant
// does not outlive its process or container. A container removed and
// created again under the same id, with an exec reusing the exec id, must
// not have its output taken for a granted exec's (which the policy may
// show to the host).
func TestGrantRecordsForgotten(t *testing.T) {
	key, cfg := grantConfig(t, "\n[observability.containers.dbg]\nexec = \"policy\"\n")
	p := newPodOpts(t, func(o *sandbox.Options) { o.Observe = cfg })
	ctx := context.Background()
	create := func(name string) {
		t.Helper()
		s := specFor(p.rootfs(t, "c1"), "sleep", "1000")
		s.Annotations = map[string]string{"io.kubernetes.cri.container-name": name,
			"io.kubernetes.cri.sandbox-name": "web", "io.kubernetes.cri.sandbox-namespace": "shop"}
		c, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: s})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	create("app")
	now := time.Now()
	tok, err := execgrant.Sign(key, execgrant.Grant{Version: 1, Pod: "shop/web", Container: "app", Argv: []string{"sleep", "1000"},
		IssuedAt: now.Unix(), Expires: now.Add(time.Minute).Unix(), Nonce: execgrant.NewNonce()})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{execgrant.Command, tok}
	g, err := p.VerifyExecGrant("c1", args, now)
	if err != nil {
		t.Fatal(err)
	}
	release := p.AdmitExecGrant("c1", "e1", tok, g)
	_, err = p.Exec(ctx, sandbox.ExecRequest{ContainerID: "c1", ExecID: "e1", Process: &specs.Process{Args: args, Cwd: "/"}})
	release()
	if err != nil {
		t.Fatal(err)
	}
	if m := p.StreamMode("c1", "e1"); m != sandbox.StreamGrantedExec {
		t.Fatalf("granted exec's stream mode %q", m)
	}
	if n := p.RanGrants(); n != 1 {
		t.Fatalf("%d granted execs remembered, want 1", n)
	}

	if err := p.Remove(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if n := p.RanGrants(); n != 0 {
		t.Fatalf("%d granted execs remembered after their container was removed", n)
	}
	create("dbg")
	if _, err := p.Exec(ctx, sandbox.ExecRequest{ContainerID: "c1", ExecID: "e1", Process: &specs.Process{Args: []string{"sleep", "1000"}, Env: []string{"PATH=/bin"}, Cwd: "/"}}); err != nil {
		t.Fatal(err)
	}
	if m := p.StreamMode("c1", "e1"); m != "plain" {
		t.Fatalf("an ungranted exec reusing the ids has stream mode %q, want plain", m)
	}
}

// grantConfig makes an owner exec-grant key and a cocoon.toml that names
// it, with plain logs and exec by grant, followed by extra.
func grantConfig(t *testing.T, extra string) (ed25519.PrivateKey, *observe.Config) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := observe.Parse(fmt.Appendf(nil, "[owner]\nexec_keys = [%q]\n\n[observability]\nlogs = \"plain\"\nexec = \"grant\"\n%s",
		base64.StdEncoding.EncodeToString(der), extra))
	if err != nil {
		t.Fatal(err)
	}
	return key, cfg
}
