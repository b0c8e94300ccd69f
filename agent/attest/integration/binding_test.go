package integration_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// initdataPolicy is a policy delivered in initdata.
const initdataPolicy = "package agent_policy\n\ndefault GuestDetailsRequest := true\n"

// The SEV-SNP device is go-sev-guest's fake (no SNP hardware here): it signs
// real-format reports carrying the HOST_DATA the test gives it.
func snpInitdata(t *testing.T) *initdata.Initdata {
	t.Helper()
	id, err := initdata.Create("sha384", map[string]string{initdata.KeyPolicy: initdataPolicy})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// HOST_DATA that is not the initdata's digest means the host swapped the
// initdata after launch: the agent refuses to run and never listens.
func TestInitdataMismatchRefusesToServe(t *testing.T) {
	testenv.RequiresRoot(t)
	id := snpInitdata(t)
	other, err := initdata.Create("sha384", map[string]string{initdata.KeyPolicy: "package agent_policy\n\ndefault ExecProcessRequest := true\n"})
	if err != nil {
		t.Fatal(err)
	}
	fake, err := kbstest.NewFakeSNP(other.Bound(32))
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t)
	writeInitdata(t, &cfg, id)
	err = daemon.RunWith(context.Background(), cfg, slog.New(slog.DiscardHandler), daemon.Options{
		Ready:  func(net.Addr) { t.Error("the agent listened with unbound initdata") },
		Attest: attest.Options{Root: t.TempDir(), SEVDevice: fake},
	})
	if err == nil || !strings.Contains(err.Error(), "HOST_DATA") || !strings.Contains(err.Error(), id.DigestHex()[:64]) {
		t.Fatalf("RunWith: %v, want the binding error naming HOST_DATA and the initdata digest", err)
	}
	sock := strings.TrimPrefix(cfg.ServerAddr, "unix://")
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket %s exists after a refused start: %v", sock, err)
	}
}

// With HOST_DATA matching, the agent serves under initdata's policy and
// measures it.
func TestInitdataBoundServes(t *testing.T) {
	id := snpInitdata(t)
	fake, err := kbstest.NewFakeSNP(id.Bound(32))
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t)
	writeInitdata(t, &cfg, id)
	a := start(t, cfg, daemon.Options{Attest: attest.Options{Root: t.TempDir(), SEVDevice: fake}})
	ctx := ctxT(t)
	if _, err := a.GetGuestDetails(ctx, &agentpb.GuestDetailsRequest{}); err != nil {
		t.Fatal(err)
	}
	// Initdata's policy is in force: anything it does not allow is refused.
	if _, err := a.ListRoutes(ctx, &agentpb.ListRoutesRequest{}); err == nil {
		t.Error("ListRoutes allowed, but initdata's policy does not define it")
	}
	got := cocoonEvents(a.events(t))
	if want := "LoadPolicy sha256:" + policy.Digest(initdataPolicy); len(got) != 1 || got[0] != want {
		t.Fatalf("measurements %q, want [%s]", got, want)
	}
}
