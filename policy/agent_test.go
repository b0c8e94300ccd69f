package policy_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

// runAgent starts the real agent with cfg on a temp unix socket and returns
// a connected client.
func runAgent(t *testing.T, cfg config.Config) *client.Client {
	t.Helper()
	return testagent.Start(t, cfg, daemon.Options{})
}

func testConfig(t *testing.T) config.Config { return testagent.Config(t) }

func writePolicy(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.rego")
	if err := os.WriteFile(p, []byte(builtin(t, name)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Exec is refused by the running agent under allow-all-except-exec, with
// Kata's code and message, and the decision lands in the log.
func TestAgentDeniesExec(t *testing.T) {
	cfg := testConfig(t)
	cfg.PolicyFile = writePolicy(t, policy.AllowAllExceptExec)
	c := runAgent(t, cfg)
	_, err := c.Agent.ExecProcess(callCtx(t), &agentpb.ExecProcessRequest{ContainerId: "c1", ExecId: "e1",
		Process: &agentpb.Process{Args: []string{"/bin/sh"}}})
	st, _ := status.FromError(err)
	if st.Code() != codes.PermissionDenied || !strings.HasPrefix(st.Message(), "ExecProcessRequest is blocked by policy") {
		t.Fatalf("ExecProcess: %v", err)
	}
	// An allowed request passes the gate (and reaches its handler).
	if _, err := c.Agent.GetGuestDetails(callCtx(t), &agentpb.GuestDetailsRequest{}); status.Code(err) == codes.PermissionDenied {
		t.Fatalf("GetGuestDetails: %v", err)
	}
	f, err := os.Open(cfg.DecisionLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := decisionlog.Verify([]decisionlog.Source{{Name: cfg.DecisionLog, R: f}}); err != nil {
		t.Fatal(err)
	}
}

// A policy delivered in an initdata disk image is in force from the first
// request, and overrides the policy file.
func TestAgentPolicyFromInitdataImage(t *testing.T) {
	text := builtin(t, policy.CocoDefault)
	id, err := initdata.Create("sha384", map[string]string{initdata.KeyPolicy: text, initdata.KeyAA: "[token_configs]\n"})
	if err != nil {
		t.Fatal(err)
	}
	img, err := initdata.Image(id.Raw)
	if err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(t.TempDir(), "initdata.img")
	if err := os.WriteFile(dev, img, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.InitdataDevice = dev
	cfg.PolicyFile = writePolicy(t, policy.AllowAll)
	c := runAgent(t, cfg)
	for name, call := range map[string]func(context.Context) error{
		"SetPolicy": func(ctx context.Context) error {
			_, err := c.Agent.SetPolicy(ctx, &agentpb.SetPolicyRequest{Policy: builtin(t, policy.AllowAll)})
			return err
		},
		"GetMetrics": func(ctx context.Context) error {
			_, err := c.Agent.GetMetrics(ctx, &agentpb.GetMetricsRequest{})
			return err
		},
		"ExecProcess": func(ctx context.Context) error {
			_, err := c.Agent.ExecProcess(ctx, &agentpb.ExecProcessRequest{})
			return err
		},
	} {
		if err := call(callCtx(t)); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", name, err)
		}
	}
	log, err := os.ReadFile(cfg.DecisionLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `"source":"initdata:`+id.DigestHex()+`"`) {
		t.Fatalf("decision log does not record the initdata policy:\n%s", log)
	}
}

// SetPolicy through the agent: allowed by allow-all, then the new policy
// (allow-all-except-exec) is in force.
func TestAgentSetPolicy(t *testing.T) {
	cfg := testConfig(t)
	cfg.PolicyFile = writePolicy(t, policy.AllowAll)
	c := runAgent(t, cfg)
	if _, err := c.Agent.SetPolicy(callCtx(t), &agentpb.SetPolicyRequest{Policy: "package other\n"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad policy: %v", err)
	}
	if _, err := c.Agent.SetPolicy(callCtx(t), &agentpb.SetPolicyRequest{Policy: builtin(t, policy.AllowAllExceptExec)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Agent.ExecProcess(callCtx(t), &agentpb.ExecProcessRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ExecProcess after SetPolicy: %v", err)
	}
}

// In confidential mode a configured policy that does not load stops the
// agent instead of falling back. The TEE is go-sev-guest's fake SNP device
// (no SNP hardware here), so that the start gets as far as the policy.
func TestConfidentialRefusesBrokenPolicy(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*config.Config)
		noTEE  bool
		want   string
	}{
		"bad policy file": {mutate: func(c *config.Config) {
			p := filepath.Join(t.TempDir(), "bad.rego")
			os.WriteFile(p, []byte("package agent_policy\nExecProcessRequest := {\n"), 0o600)
			c.PolicyFile = p
		}, want: "policy"},
		"missing policy file": {mutate: func(c *config.Config) { c.PolicyFile = filepath.Join(t.TempDir(), "absent.rego") }, want: "absent.rego"},
		"bad initdata": {mutate: func(c *config.Config) {
			p := filepath.Join(t.TempDir(), "initdata.img")
			os.WriteFile(p, []byte("notinitdata....."), 0o600)
			c.InitdataDevice = p
		}, want: "initdata"},
		"no TEE": {mutate: func(*config.Config) {}, noTEE: true, want: "needs a TEE"},
	} {
		cfg := testConfig(t)
		cfg.Confidential = true
		tc.mutate(&cfg)
		o := daemon.Options{Ready: func(net.Addr) { t.Errorf("%s: agent started serving", name) }}
		o.Attest.Root = t.TempDir()
		if !tc.noTEE {
			fake, err := kbstest.NewFakeSNP(make([]byte, 32))
			if err != nil {
				t.Fatal(err)
			}
			o.Attest.SEVDevice = fake
		}
		err := daemon.RunWith(context.Background(), cfg, slog.New(slog.DiscardHandler), o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, tc.want)
		}
	}
}
