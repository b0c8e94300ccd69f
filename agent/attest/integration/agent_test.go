package integration_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// TestMain lets the test binary serve as libcontainer's container init, as
// cocoon-agent does when re-executed as "cocoon-agent init".
func TestMain(m *testing.M) {
	container.InitIfRequested()
	os.Exit(m.Run())
}

// agent is a running agent and the client talking to it.
type agent struct {
	agentpb.AgentServiceService
	cfg config.Config
}

// baseConfig keeps every agent path inside the test's temporary directory.
func baseConfig(t *testing.T) config.Config { return testagent.Config(t) }

// writeInitdata stores initdata as the disk image Kata attaches and points
// the configuration at it.
func writeInitdata(t *testing.T, cfg *config.Config, id *initdata.Initdata) {
	t.Helper()
	img, err := initdata.Image(id.Raw)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "initdata.img")
	if err := os.WriteFile(p, img, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.InitdataDevice = p
}

// start runs the agent until the test ends.
func start(t *testing.T, cfg config.Config, o daemon.Options) *agent {
	t.Helper()
	testenv.RequiresRoot(t)
	c := testagent.Start(t, cfg, o)
	return &agent{AgentServiceService: c.Agent, cfg: cfg}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func spec(root string, env []string, args ...string) *agentpb.Spec {
	return &agentpb.Spec{
		Version: "1.1.0",
		Process: &agentpb.Process{Args: args, Env: append([]string{"PATH=/bin:/sbin"}, env...), Cwd: "/"},
		Root:    &agentpb.Root{Path: root},
		Mounts: []*agentpb.Mount{
			{Destination: "/proc", Source: "proc", Type: "proc"},
			{Destination: "/dev", Source: "tmpfs", Type: "tmpfs", Options: []string{"nosuid", "mode=755"}},
		},
		Linux: &agentpb.Linux{Namespaces: []*agentpb.LinuxNamespace{{Type: "mount"}, {Type: "ipc"}, {Type: "uts"}, {Type: "pid"}}},
	}
}

// run starts a created container and returns its stdout and exit status.
func (a *agent) run(t *testing.T, cid string) (string, int32) {
	t.Helper()
	ctx := ctxT(t)
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for {
		r, err := a.ReadStdout(ctx, &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: cid, Len: 32 << 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) == 0 {
			break
		}
		out.Write(r.Data)
	}
	w, err := a.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: cid})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	return out.String(), w.Status
}

// events parses the agent's runtime measurement log.
func (a *agent) events(t *testing.T) []eventlog.Event {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(a.cfg.StateDir, "eventlog"))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// gone checks that a refused container left nothing: the agent does not
// know it and its libcontainer state directory does not exist.
func (a *agent) gone(t *testing.T, cid string) {
	t.Helper()
	if _, err := a.StatsContainer(ctxT(t), &agentpb.StatsContainerRequest{ContainerId: cid}); err == nil {
		t.Errorf("refused container %s exists", cid)
	}
	if _, err := os.Stat(filepath.Join(a.cfg.StateDir, "containers", cid)); !os.IsNotExist(err) {
		t.Errorf("refused container %s left state: %v", cid, err)
	}
}
