package setup_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/setup"
)

// options returns the options the agent's default configuration gives,
// with the measurement log in the test's temp dir, completed by o.
func options(t *testing.T, o setup.Options) setup.Options {
	o.StateDir, o.WorkloadAPI, o.APIMode = t.TempDir(), true, "resource"
	return o
}

func TestNoTEE(t *testing.T) {
	a, err := setup.Start(context.Background(), options(t, setup.Options{Attest: attest.Options{Root: t.TempDir()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Attester != nil || a.KBS != nil {
		t.Fatal("attestation enabled without a TEE")
	}
	if _, err := a.Resolve(context.Background(), "kbs:///a/b/c"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Resolve without KBS: %v", err)
	}
	if err := a.Record("d", "o", "c"); err != nil {
		t.Fatal(err)
	}
	env := []string{"A=b"}
	if got, err := a.UnsealEnv(context.Background(), env); err != nil || got[0] != "A=b" {
		t.Fatalf("UnsealEnv without sealed values: %v %v", got, err)
	}
	if _, err := a.UnsealEnv(context.Background(), []string{"A=sealed.x.y.z"}); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("sealed value without attestation: %v", err)
	}
	// No TEE, not confidential, with initdata: the binding cannot be
	// checked; a development agent still runs and says so.
	id, _ := initdata.Create("sha256", map[string]string{})
	o := options(t, setup.Options{Initdata: id, Attest: attest.Options{Root: t.TempDir()}})
	b, err := setup.Start(context.Background(), o)
	if err != nil || b.Attester != nil {
		t.Fatalf("no TEE with initdata: %v", err)
	}
	b.Close()
	// Confidential mode without a TEE refuses: nothing it promises can hold.
	o.Confidential = true
	if _, err := setup.Start(context.Background(), o); err == nil || !strings.Contains(err.Error(), "needs a TEE") {
		t.Fatalf("confidential without a TEE: %v", err)
	}
}

// SNP is go-sev-guest's fake device (no SEV-SNP here).
func TestStartSNP(t *testing.T) {
	fake, err := kbstest.NewFakeSNP(nil)
	if err != nil {
		t.Fatal(err)
	}
	kbsrv, err := kbstest.New(kbstest.Options{SNPRoot: fake.ARK(), Resources: map[string][]byte{"default/cfg/x": []byte("payload")}})
	if err != nil {
		t.Fatal(err)
	}
	defer kbsrv.Close()
	id, err := initdata.Create("sha384", map[string]string{
		initdata.KeyAA:  "[token_configs.kbs]\nurl = \"" + kbsrv.URL + "\"\n",
		initdata.KeyCDH: "[[credentials]]\nresource_uri = \"kbs:///default/cfg/x\"\npath = \"/run/confidential-containers/cdh/kbs/x\"\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	// The host measured this initdata at launch.
	fake.SetHostData(id.Bound(32))

	credRoot := t.TempDir()
	o := options(t, setup.Options{
		Confidential: true, Initdata: id, CredentialRoot: credRoot, APIAddr: "127.0.0.1:0",
		Attest: attest.Options{Root: t.TempDir(), SEVDevice: fake},
	})
	a, err := setup.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if a.Attester.Tee() != attest.TeeSNP || a.KBS == nil || a.APIAddr == nil {
		t.Fatalf("attestation %+v", a)
	}
	got, err := a.Resolve(context.Background(), "kbs:///default/cfg/x")
	if err != nil || string(got) != "payload" {
		t.Fatalf("Resolve = %q %v", got, err)
	}
	resp, err := http.Get("http://" + a.APIAddr.String() + "/cdh/resource/default/cfg/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "payload" {
		t.Fatalf("workload API: %d %q", resp.StatusCode, body)
	}
	if err := a.RecordPull("docker.io/library/busybox:latest", "sha256:1234"); err != nil {
		t.Fatal(err)
	}
	a.Close() // waits for the credential prefetch
	if b, err := os.ReadFile(filepath.Join(credRoot, "run/confidential-containers/cdh/kbs/x")); err != nil || string(b) != "payload" {
		t.Fatalf("credential: %q %v", b, err)
	}
	raw, _ := os.ReadFile(filepath.Join(o.StateDir, "eventlog"))
	evs, err := eventlog.Parse(raw)
	if err != nil || len(evs) != 1 || evs[0].Content != "docker.io/library/busybox:latest@sha256:1234" {
		t.Fatalf("event log %+v %v", evs, err)
	}
}

func TestStartRefusesUnboundInitdata(t *testing.T) {
	id, _ := initdata.Create("sha256", map[string]string{"policy.rego": "package agent_policy\n"})
	fake, _ := kbstest.NewFakeSNP([]byte("something else"))
	_, err := setup.Start(context.Background(), options(t, setup.Options{Initdata: id, Attest: attest.Options{Root: t.TempDir(), SEVDevice: fake}}))
	if err == nil || !strings.Contains(err.Error(), "HOST_DATA") {
		t.Fatalf("unbound initdata: %v", err)
	}
}

// cdh.kbs_resources (the kernel command line's, or the image file's in
// confidential mode) adds credentials beside cdh.toml's, under the same
// confinement.
func TestKBSResourcesFromConfig(t *testing.T) {
	fake, err := kbstest.NewFakeSNP(nil)
	if err != nil {
		t.Fatal(err)
	}
	kbsrv, err := kbstest.New(kbstest.Options{SNPRoot: fake.ARK(), Resources: map[string][]byte{"default/cfg/y": []byte("from the command line")}})
	if err != nil {
		t.Fatal(err)
	}
	defer kbsrv.Close()
	id, err := initdata.Create("sha384", map[string]string{initdata.KeyAA: "[token_configs.kbs]\nurl = \"" + kbsrv.URL + "\"\n"})
	if err != nil {
		t.Fatal(err)
	}
	fake.SetHostData(id.Bound(32))
	start := func(resources string) (*setup.Attestation, string, error) {
		credRoot := t.TempDir()
		a, err := setup.Start(context.Background(), options(t, setup.Options{
			KBSResources: resources, Initdata: id, CredentialRoot: credRoot, APIAddr: "127.0.0.1:0",
			Attest: attest.Options{Root: t.TempDir(), SEVDevice: fake},
		}))
		return a, credRoot, err
	}
	a, credRoot, err := start("kbs:///default/cfg/y::/run/confidential-containers/cdh/kbs/y")
	if err != nil {
		t.Fatal(err)
	}
	a.Close() // waits for the credential prefetch
	if b, err := os.ReadFile(filepath.Join(credRoot, "run/confidential-containers/cdh/kbs/y")); err != nil || string(b) != "from the command line" {
		t.Fatalf("credential: %q %v", b, err)
	}
	if _, _, err := start("kbs:///default/cfg/y::/etc/shadow"); err == nil || !strings.Contains(err.Error(), "/etc/shadow") {
		t.Fatalf("a credential outside the data hub's directory: %v", err)
	}
}
