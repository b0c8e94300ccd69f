package rpc_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testgrant"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

// observedAgent is the real agent under the shipped coco-default policy,
// with the owner's cocoon.toml in initdata, logging into a buffer.
type observedAgent struct {
	*agent
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func startObserved(t testing.TB, o testgrant.Owner, extra string) *observedAgent {
	t.Helper()
	testenv.RequiresRoot(t)
	coco, err := policy.Builtin(policy.CocoDefault)
	if err != nil {
		t.Fatal(err)
	}
	toml := o.TOML(t) + "\n[observability]\nmetrics = \"aggregate\"\n" + extra
	id, err := initdata.Create("sha256", map[string]string{"policy.rego": coco, "cocoon.toml": toml})
	if err != nil {
		t.Fatal(err)
	}
	img, err := initdata.Image(id.Raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testagent.Config(t)
	cfg.InitdataDevice = filepath.Join(t.TempDir(), "initdata.img")
	if err := os.WriteFile(cfg.InitdataDevice, img, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() {
		done <- daemon.RunWith(ctx, cfg, log, daemon.Options{Ready: func(a net.Addr) { ready <- a }})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("agent exited: %v", err)
	}
	c, err := client.Dial(ctx, cfg.ServerAddr)
	if err != nil {
		cancel()
		<-done
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent shutdown: %v", err)
		}
	})
	return &observedAgent{agent: &agent{AgentServiceService: c.Agent, run: cfg.KataRunDir, state: cfg.StateDir, cgroup: cfg.CgroupParent}, logs: logs}
}

// k8sSpec is spec with the annotations containerd adds for a pod's
// container.
func k8sSpec(root, name string, args ...string) *agentpb.Spec {
	s := spec(root, args...)
	s.Annotations = map[string]string{
		"io.kubernetes.cri.container-name":    name,
		"io.kubernetes.cri.sandbox-name":      "web",
		"io.kubernetes.cri.sandbox-namespace": "shop",
	}
	return s
}

// readStream reads a stream to EOF and fails if what the host read holds
// canary (in one payload or across two).
func (a *observedAgent) readStream(t *testing.T, cid, eid string, stderr bool, canary string) []byte {
	t.Helper()
	out, err := testagent.ReadStream(ctxT(t), a, cid, eid, stderr)
	if err != nil {
		t.Fatal(err)
	}
	if canary != "" && bytes.Contains(out, []byte(canary)) {
		t.Fatalf("the canary reached the host in %s payloads", map[bool]string{false: "ReadStdout", true: "ReadStderr"}[stderr])
	}
	return out
}

func TestSealedLogsThroughAPI(t *testing.T) {
	o := testgrant.NewOwner(t)
	a := startObserved(t, o, "")
	ctx := ctxT(t)
	const canary = "CANARY-1f0c-not-for-the-host"

	// 64 MiB with nobody reading: the container must finish.
	a.runContainer(t, "flood", k8sSpec(a.rootfs(t, "flood"), "flood", "sh", "-c", "head -c 67108864 /dev/zero | tr '\\0' 'z' | fold -w 1000; echo "+canary))
	if st := a.wait(t, "flood", ""); st != 0 {
		t.Fatalf("flood exited %d", st)
	}
	sealed := a.readStream(t, "flood", "", false, canary)
	plain, marks, err := sealedlog.ReadAll(o.Seal, sealed)
	if err != nil {
		t.Fatal(err)
	}
	var missing, closed bool
	for _, m := range marks {
		missing = missing || m.Kind == sealedlog.Missing
		closed = closed || m.Kind == sealedlog.Closed
		if m.Kind == sealedlog.Rejected || m.Kind == sealedlog.Unsealed {
			t.Fatalf("flood: mark %+v", m)
		}
	}
	if !missing || !closed || len(plain) != 1 {
		t.Fatalf("flood: missing %v, closed %v, %d streams: the dropped records must be reported and the end seen", missing, closed, len(plain))
	}

	// Output read as the runtime reads it: recovered exactly.
	script := `i=0; while [ $i -lt 2000 ]; do echo "line $i ` + canary + `"; echo "err $i" >&2; i=$((i+1)); done; printf 'no newline'`
	a.runContainer(t, "app", k8sSpec(a.rootfs(t, "app"), "app", "sh", "-c", script))
	var errOut []byte
	var wg sync.WaitGroup
	wg.Go(func() { errOut = a.readStream(t, "app", "", true, canary) })
	out := a.readStream(t, "app", "", false, canary)
	wg.Wait()
	var want, wantErr bytes.Buffer
	for i := range 2000 {
		fmt.Fprintf(&want, "line %d %s\n", i, canary)
		fmt.Fprintf(&wantErr, "err %d\n", i)
	}
	want.WriteString("no newline")
	for name, tc := range map[string]struct {
		sealed []byte
		want   []byte
	}{"stdout": {out, want.Bytes()}, "stderr": {errOut, wantErr.Bytes()}} {
		plain, marks, err := sealedlog.ReadAll(o.Seal, tc.sealed)
		if err != nil {
			t.Fatal(err)
		}
		if len(plain) != 1 {
			t.Fatalf("%s: %d streams", name, len(plain))
		}
		for label, p := range plain {
			if !strings.HasPrefix(label, "app/"+name+"#") || !bytes.Equal(p, tc.want) {
				t.Fatalf("%s: stream %s, recovered %d bytes, want %d", name, label, len(p), len(tc.want))
			}
		}
		for _, m := range marks {
			if m.Problem() || m.Kind == sealedlog.Unsealed {
				t.Fatalf("%s: mark %+v", name, m)
			}
		}
		// A record the host drops or replays is reported.
		lines := bytes.SplitAfter(tc.sealed, []byte("\n"))
		dropped := append(append([][]byte{}, lines[:3]...), lines[4:]...)
		replayed := append(append([][]byte{}, lines...), lines[2])
		for what, ls := range map[string][][]byte{"dropped": dropped, "replayed": replayed} {
			_, marks, _ := sealedlog.ReadAll(o.Seal, bytes.Join(ls, nil))
			kind := map[string]sealedlog.Kind{"dropped": sealedlog.Missing, "replayed": sealedlog.Replayed}[what]
			found := false
			for _, m := range marks {
				found = found || m.Kind == kind
			}
			if !found {
				t.Errorf("%s: a %s record is not reported: %+v", name, what, marks)
			}
		}
	}
	must(t)(a.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: "app"}))
	must(t)(a.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: "flood"}))
	if bytes.Contains(a.logs.Bytes(), []byte(canary)) {
		t.Fatal("the canary is in the agent's logs")
	}
	if len(a.logs.Bytes()) == 0 {
		t.Fatal("no agent logs captured: the canary check proves nothing")
	}
}

func grant(t *testing.T, key ed25519.PrivateKey, ctr string, exp time.Duration, argv ...string) string {
	t.Helper()
	now := time.Now()
	iat := now
	if exp < 0 {
		iat = now.Add(2 * exp)
	}
	tok, err := execgrant.Sign(key, execgrant.Grant{Version: 1, Pod: "shop/web", Container: ctr, Argv: argv,
		IssuedAt: iat.Unix(), Expires: now.Add(exp).Unix(), Nonce: execgrant.NewNonce()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestOwnerSignedExecThroughAPI(t *testing.T) {
	o := testgrant.NewOwner(t)
	a := startObserved(t, o, "[observability.containers.other]\nlogs = \"plain\"\n")
	ctx := ctxT(t)
	for _, c := range []string{"app", "other"} {
		a.runContainer(t, c, k8sSpec(a.rootfs(t, c), c, "sleep", "1000"))
	}
	n := 0
	exec := func(cid string, p *agentpb.Process) (string, error) {
		n++
		eid := fmt.Sprintf("e%d", n)
		_, err := a.ExecProcess(ctx, &agentpb.ExecProcessRequest{ContainerId: cid, ExecId: eid, Process: p})
		return eid, err
	}
	// The host's own process fields must not reach the granted command.
	hostile := func(args ...string) *agentpb.Process {
		return &agentpb.Process{Args: args, Env: []string{"LD_PRELOAD=/evil.so", "PATH=/bin"}, Cwd: "/tmp"}
	}
	argv := []string{"sh", "-c", `echo "granted pwd=$PWD preload=$LD_PRELOAD"; test -z "$LD_PRELOAD" && test "$PWD" = /`}
	tok := grant(t, o.Exec, "app", time.Minute, argv...)
	eid, err := exec("app", hostile(execgrant.Command, tok))
	if err != nil {
		t.Fatalf("valid grant: %v", err)
	}
	if out := a.readStream(t, "app", eid, false, ""); string(out) != "granted pwd=/ preload=\n" {
		t.Fatalf("granted exec wrote %q", out)
	}
	if st := a.wait(t, "app", eid); st != 0 {
		t.Fatalf("granted exec exited %d: env or cwd came from the request", st)
	}

	otherKey := testgrant.NewOwner(t).Exec
	tampered := func() string {
		parts := strings.Split(strings.TrimPrefix(grant(t, o.Exec, "app", time.Minute, "id"), execgrant.Prefix), ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[0])
		payload = bytes.Replace(payload, []byte(`["id"]`), []byte(`["sh"]`), 1)
		return execgrant.Prefix + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[1]
	}()
	for name, tc := range map[string]struct {
		cid  string
		args []string
		want string
	}{
		"same token again":  {"app", []string{execgrant.Command, tok}, "already used"},
		"another container": {"other", []string{execgrant.Command, grant(t, o.Exec, "app", time.Minute, "id")}, "another container"},
		"changed argv":      {"app", []string{execgrant.Command, tampered}, "does not verify"},
		"expired":           {"app", []string{execgrant.Command, grant(t, o.Exec, "app", -time.Minute, "id")}, "expired"},
		"another key":       {"app", []string{execgrant.Command, grant(t, otherKey, "app", time.Minute, "id")}, "does not verify"},
		"no token":          {"app", []string{"sh", "-c", "id"}, "only owner-signed exec grants"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := exec(tc.cid, hostile(tc.args...))
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want PERMISSION_DENIED with %q", err, tc.want)
			}
		})
	}

	// kubectl exec -it: a terminal, stdin and resize.
	tty := grant(t, o.Exec, "app", time.Minute, "sh")
	p := hostile(execgrant.Command, tty)
	p.Terminal = true
	eid, err = exec("app", p)
	if err != nil {
		t.Fatalf("interactive grant: %v", err)
	}
	must(t)(a.TtyWinResize(ctx, &agentpb.TtyWinResizeRequest{ContainerId: "app", ExecId: eid, Row: 40, Column: 100}))
	must(t)(a.WriteStdin(ctx, &agentpb.WriteStreamRequest{ContainerId: "app", ExecId: eid, Data: []byte("stty size; exit 7\n")}))
	out := a.readStream(t, "app", eid, false, "")
	if !bytes.Contains(out, []byte("40 100")) {
		t.Errorf("terminal output %q lacks the resized window", out)
	}
	if st := a.wait(t, "app", eid); st != 7 {
		t.Fatalf("interactive exec exited %d, want 7", st)
	}

	// Aggregate metrics only.
	m := must(t)(a.GetMetrics(ctx, &agentpb.GetMetricsRequest{})).(*agentpb.Metrics)
	if !strings.Contains(m.Metrics, "kata_guest_load") || strings.Contains(m.Metrics, "kata_guest_container") || strings.Contains(m.Metrics, "go_gc") {
		t.Errorf("metrics are not the aggregate set:\n%s", m.Metrics)
	}
}
