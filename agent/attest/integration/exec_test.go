package integration_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testgrant"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// startOwned runs the real agent under the shipped coco-default policy
// with the owner's keys in initdata's cocoon.toml, as the owner's
// `cocoonctl initdata create --file cocoon.toml=...` would deliver them.
func startOwned(t *testing.T, sample bool) (*agent, testgrant.Owner) {
	t.Helper()
	o := testgrant.NewOwner(t)
	coco, err := policy.Builtin(policy.CocoDefault)
	if err != nil {
		t.Fatal(err)
	}
	id, err := initdata.Create("sha256", map[string]string{initdata.KeyPolicy: coco, "cocoon.toml": o.TOML(t)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t)
	cfg.AttestSample = sample
	writeInitdata(t, &cfg, id)
	return start(t, cfg, daemon.Options{}), o
}

// runApp starts a long-running container named "app" of pod shop/web, with
// the annotations containerd adds (the policy and the grant check them).
func (a *agent) runApp(t *testing.T, cfg config.Config) {
	t.Helper()
	s := spec(testenv.KataRootfs(t, cfg.KataRunDir, "app"), nil, "sleep", "1000")
	s.Annotations = map[string]string{
		"io.kubernetes.cri.container-name":    "app",
		"io.kubernetes.cri.sandbox-name":      "web",
		"io.kubernetes.cri.sandbox-namespace": "shop",
	}
	ctx := ctxT(t)
	if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "app", ExecId: "app", OCI: s}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "app"}); err != nil {
		t.Fatal(err)
	}
}

// encryptedExec signs a grant carrying a fresh ephemeral key, as
// `cocoonctl exec` does, runs it, and returns the grant's nonce, the
// ephemeral private key and the exec's whole stdout and stderr as the
// host relays them.
func (a *agent) encryptedExec(t *testing.T, o testgrant.Owner, eid string, argv ...string) (nonce string, eph *ecdh.PrivateKey, stdout, stderr []byte) {
	t.Helper()
	tok, nonce, eph := testgrant.Sealed(t, o.Exec, argv...)
	ctx := ctxT(t)
	if _, err := a.ExecProcess(ctx, &agentpb.ExecProcessRequest{ContainerId: "app", ExecId: eid,
		Process: &agentpb.Process{Args: []string{execgrant.Command, tok}, Env: []string{"PATH=/bin"}, Cwd: "/"}}); err != nil {
		t.Fatalf("encrypted exec: %v", err)
	}
	read := func(stderr bool) []byte {
		out, err := testagent.ReadStream(ctx, a, "app", eid, stderr)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	stdout, stderr = read(false), read(true)
	if w, err := a.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: "app", ExecId: eid}); err != nil || w.Status != 0 {
		t.Fatalf("exec: %v, status %v", err, w)
	}
	return nonce, eph, stdout, stderr
}

// openSession opens the session's output with the grant's key, skipping
// the announcement (unsealed to ExecOwner), and returns the plaintext.
func openSession(t *testing.T, eph *ecdh.PrivateKey, stdout, stderr []byte) (string, string) {
	t.Helper()
	x, err := sealedlog.NewExecOwner(eph)
	if err != nil {
		t.Fatal(err)
	}
	var outs [2]strings.Builder
	for _, text := range [][]byte{stdout, stderr} {
		for _, l := range bytes.Split(bytes.TrimSuffix(text, []byte("\n")), []byte("\n")) {
			if execgrant.IsAnnouncement(l) {
				continue
			}
			out, unsealed, err := x.Line(l)
			if err != nil || unsealed {
				t.Fatalf("session line %.100q: %v (unsealed %v)", l, err, unsealed)
			}
			for _, o := range out {
				if o.Stderr {
					outs[1].Write(o.Data)
				} else {
					outs[0].Write(o.Data)
				}
			}
		}
	}
	if err := x.End(); err != nil {
		t.Fatal(err)
	}
	return outs[0].String(), outs[1].String()
}

// Through the real daemon, an encrypted exec session is announced with the
// evidence of the attester the daemon set up, and that evidence binds
// this grant and every stream of the session: the daemon's wiring of the
// attester to the sandbox is what this proves. The sample attester stands
// in for TEE hardware (this machine has none); its evidence authenticates
// nothing, so the check below allows it explicitly, as
// `cocoonctl exec --insecure-sample-evidence` does.
func TestEncryptedExecAnnouncedByDaemon(t *testing.T) {
	a, o := startOwned(t, true)
	a.runApp(t, a.cfg)
	nonce, eph, stdout, stderr := a.encryptedExec(t, o, "e2e-ann", "sh", "-c", "echo out; echo err >&2")

	first, _, _ := bytes.Cut(stdout, []byte("\n"))
	if !execgrant.IsAnnouncement(first) {
		t.Fatalf("the session's first stdout line is not an announcement: %.120q", first)
	}
	ann, err := execgrant.ParseAnnouncement(first)
	if err != nil {
		t.Fatal(err)
	}
	testgrant.CheckSampleAnnouncement(t, ann, nonce, stdout, stderr)
	if out, errOut := openSession(t, eph, stdout, stderr); out != "out\n" || errOut != "err\n" {
		t.Errorf("session output %q / %q, want out / err", out, errOut)
	}
}

// An agent without an attester (no TEE, no sample attester) still runs an
// encrypted exec but announces nothing (Sandbox.SetAttester's
// documented behaviour): the first line is the key stream's header, and
// `cocoonctl exec` refuses such a session for want of evidence.
func TestEncryptedExecWithoutAttesterNotAnnounced(t *testing.T) {
	a, o := startOwned(t, false)
	a.runApp(t, a.cfg)
	_, eph, stdout, stderr := a.encryptedExec(t, o, "e2e-noann", "sh", "-c", "echo out")
	if bytes.Contains(stdout, []byte(execgrant.AnnouncementPrefix)) || bytes.Contains(stderr, []byte(execgrant.AnnouncementPrefix)) {
		t.Fatal("an agent without an attester announced a session")
	}
	if !bytes.HasPrefix(stdout, []byte(sealedlog.HeaderPrefix)) {
		t.Fatalf("stdout starts %.60q, want the key stream's header", stdout)
	}
	if out, _ := openSession(t, eph, stdout, stderr); out != "out\n" {
		t.Errorf("session output %q, want out", out)
	}
}

// Through the real daemon, a sealed container's stdout and stderr carry
// the evidence of the daemon's attester over their headers (the sample
// attester stands in for TEE hardware, allowed explicitly below): the
// owner's opener checks it and, requiring evidence, shows both streams.
func TestSealedLogsAttestedByDaemon(t *testing.T) {
	a, o := startOwned(t, true)
	s := spec(testenv.KataRootfs(t, a.cfg.KataRunDir, "logs"), nil, "sh", "-c", "echo out; echo err >&2")
	s.Annotations = map[string]string{"io.kubernetes.cri.container-name": "logs"}
	ctx := ctxT(t)
	if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "logs", ExecId: "logs", OCI: s}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "logs"}); err != nil {
		t.Fatal(err)
	}
	var text []byte
	for _, read := range []func(context.Context, *agentpb.ReadStreamRequest) (*agentpb.ReadStreamResponse, error){a.ReadStdout, a.ReadStderr} {
		for {
			r, err := read(ctx, &agentpb.ReadStreamRequest{ContainerId: "logs", ExecId: "logs", Len: 32 << 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Data) == 0 {
				break
			}
			text = append(text, r.Data...)
		}
	}
	op, err := sealedlog.NewOpenerWith(o.Seal, sealedlog.OpenerOptions{RequireEvidence: true, AllowSample: true})
	if err != nil {
		t.Fatal(err)
	}
	var plain []byte
	attested := map[string]string{}
	for _, l := range bytes.Split(bytes.TrimSuffix(text, []byte("\n")), []byte("\n")) {
		for _, e := range op.Line(l) {
			plain = append(plain, e.Data...)
			if e.Kind == sealedlog.Attested {
				attested[e.Stream] = e.Tee
			}
			if e.Problem() || e.Kind == sealedlog.Unsealed {
				t.Fatalf("event %+v", e)
			}
		}
	}
	if evs := op.End(); len(evs) != 0 {
		t.Fatalf("at the end: %+v", evs)
	}
	if string(plain) != "out\nerr\n" || len(attested) != 2 {
		t.Fatalf("opened %q, attested %v", plain, attested)
	}
	for stream, tee := range attested {
		if tee != "sample" {
			t.Errorf("%s attested by %q, want the daemon's sample attester", stream, tee)
		}
	}
}
