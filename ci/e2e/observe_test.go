package e2e

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

// TestObservabilityInVM runs, in the VM under coco-default with the
// owner's cocoon.toml in initdata, one container whose output is sealed to
// the owner, one owner-signed exec and one end-to-end encrypted exec: the
// host reads only ciphertext the owner's key opens, attested by the
// guest's evidence over the streams' headers, the grant runs once, and a
// canary typed into the encrypted session reaches neither the agent API's
// host side nor the guest's console or log port.
func TestObservabilityInVM(t *testing.T) {
	a := artifacts(t)
	seal, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	execPub, execKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkix := func(k any) string {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(der)
	}
	cocoon := fmt.Sprintf("[owner]\nseal_key = %q\nexec_keys = [%q]\n\n[observability]\nlogs = \"seal\"\nexec = \"grant\"\n",
		pkix(seal.PublicKey()), pkix(execPub))
	reg := startTLSRegistry(t)
	ref := reg.pushBusybox(t, "e2e/busybox")
	cdh := "[image]\nextra_root_certificates = [" + strconv.Quote(reg.CAPEM) + "]\n"
	img := initdataImage(t, filepath.Join(a.Root, "policy", "rego", "coco-default.rego"),
		map[string]string{"cdh.toml": cdh, "cocoon.toml": cocoon})
	// The sample attester stands in for TEE hardware (QEMU here has none),
	// so the sealed streams and the encrypted exec session carry evidence
	// the owner checks. The agent logs at debug to its log port as well as
	// the console, so the most it ever logs is what the canary checks see.
	v := boot(t, VMConfig{Drives: []string{img}, VsockRelays: []uint32{logVport},
		Extra: []string{"agent.attest_sample", "agent.log=debug", "agent.log_vport=1025"}})
	c := connect(t, v)
	logs := openLogPort(t, v)
	const sid = "e2e-obs"
	if _, err := c.Agent.CreateSandbox(callCtx(t), &agentpb.CreateSandboxRequest{Hostname: "e2e-pod", SandboxId: sid}); err != nil {
		t.Fatal(err)
	}
	meta := `image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"sandbox"}}`
	if _, err := c.Agent.CreateContainer(callCtx(t), &agentpb.CreateContainerRequest{
		ContainerId: sid, ExecId: sid, OCI: pauseSpec(sid), SandboxPidns: true,
		Storages: []*agentpb.Storage{{Driver: "image_guest_pull", Source: "pause", DriverOptions: []string{meta},
			MountPoint: "/run/kata-containers/" + sid + "/rootfs"}},
	}); err != nil {
		t.Fatalf("CreateContainer pause: %v", err)
	}
	if _, err := c.Agent.StartContainer(callCtx(t), &agentpb.StartContainerRequest{ContainerId: sid}); err != nil {
		t.Fatal(err)
	}

	const canary = "CANARY-vm-3c7a-sealed"
	t.Run("sealed-logs", func(t *testing.T) {
		const cid = "e2e-sealed"
		runWorkload(t, c, sid, cid, ref, "/bin/sh", "-c", "echo "+canary+"; echo warn >&2")
		out := readToEOF(t, c, cid, cid, false)
		errOut := readToEOF(t, c, cid, cid, true)
		if bytes.Contains(out, []byte(canary)) || bytes.Contains(errOut, []byte(canary)) {
			t.Fatal("the canary reached the host")
		}
		w, err := c.Agent.WaitProcess(callCtx(t), &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: cid})
		if err != nil || w.Status != 0 {
			t.Fatalf("WaitProcess: %v %v", w, err)
		}
		for name, tc := range map[string]struct {
			sealed []byte
			want   string
		}{"stdout": {out, canary + "\n"}, "stderr": {errOut, "warn\n"}} {
			plain, marks, err := sealedlog.ReadAll(seal, tc.sealed)
			if err != nil {
				t.Fatal(err)
			}
			if len(plain) != 1 {
				t.Fatalf("%s: %d streams in %q", name, len(plain), tc.sealed)
			}
			for label, p := range plain {
				if !strings.HasPrefix(label, cid+"/"+name+"#") || string(p) != tc.want {
					t.Errorf("%s: stream %s opened to %q, want %q", name, label, p, tc.want)
				}
			}
			attested := ""
			for _, m := range marks {
				if m.Problem() || m.Kind == sealedlog.Unsealed || m.Kind == sealedlog.NotAttested {
					t.Errorf("%s: mark %+v", name, m)
				}
				if m.Kind == sealedlog.Attested {
					attested = m.Tee
				}
			}
			if attested != "sample" {
				t.Errorf("%s: attested by %q, want the guest's sample attester", name, attested)
			}
		}
		if _, err := c.Agent.RemoveContainer(callCtx(t), &agentpb.RemoveContainerRequest{ContainerId: cid}); err != nil {
			t.Error(err)
		}
	})

	t.Run("granted-exec", func(t *testing.T) {
		const cid = "e2e-app"
		runWorkload(t, c, sid, cid, ref, "/bin/sleep", "600")
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			for { // the sealed init output, drained as the runtime would
				r, err := c.Agent.ReadStdout(callCtx(t), &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: cid, Len: 32 << 10})
				if err != nil || len(r.Data) == 0 {
					return
				}
			}
		}()
		now := time.Now()
		tok, err := execgrant.Sign(execKey, execgrant.Grant{Version: 1, Pod: "shop/web", Container: "app",
			Argv: []string{"/bin/sh", "-c", "echo granted in $PWD"}, IssuedAt: now.Unix(), Expires: now.Add(5 * time.Minute).Unix(),
			Nonce: execgrant.NewNonce()})
		if err != nil {
			t.Fatal(err)
		}
		exec := func(eid string) error {
			_, err := c.Agent.ExecProcess(callCtx(t), &agentpb.ExecProcessRequest{ContainerId: cid, ExecId: eid,
				Process: &agentpb.Process{Args: []string{execgrant.Command, tok}, Cwd: "/tmp", Env: []string{"LD_PRELOAD=/x.so"}, User: &agentpb.User{}}})
			return err
		}
		if err := exec("g1"); err != nil {
			t.Fatalf("granted exec: %v", err)
		}
		if out := readToEOF(t, c, cid, "g1", false); string(out) != "granted in /\n" {
			t.Errorf("granted exec wrote %q", out)
		}
		w, err := c.Agent.WaitProcess(callCtx(t), &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: "g1"})
		if err != nil || w.Status != 0 {
			t.Fatalf("WaitProcess: %v %v", w, err)
		}
		if err := exec("g2"); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "already used") {
			t.Errorf("the same grant again: %v, want PERMISSION_DENIED already used", err)
		}
		if _, err := c.Agent.SignalProcess(callCtx(t), &agentpb.SignalProcessRequest{ContainerId: cid, Signal: 9}); err != nil {
			t.Error(err)
		}
		<-readDone
		if _, err := c.Agent.WaitProcess(callCtx(t), &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: cid}); err != nil {
			t.Error(err)
		}
		if _, err := c.Agent.RemoveContainer(callCtx(t), &agentpb.RemoveContainerRequest{ContainerId: cid}); err != nil {
			t.Error(err)
		}
	})

	t.Run("encrypted-exec", func(t *testing.T) {
		testEncryptedExecInVM(t, v, c, logs, sid, ref, execKey)
	})
}

// runWorkload creates and starts a container of the pod pulled in the
// guest, named "app" in pod shop/web as containerd would annotate it.
func runWorkload(t *testing.T, c *client.Client, sid, cid, ref string, args ...string) {
	t.Helper()
	rootfs := "/run/kata-containers/" + cid + "/rootfs"
	spec := pauseSpec(sid)
	spec.Process = &agentpb.Process{Args: args, Cwd: "/", User: &agentpb.User{}, Env: []string{"PATH=/bin"}}
	spec.Root = &agentpb.Root{Path: rootfs}
	spec.Annotations = map[string]string{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sid,
		"io.kubernetes.cri.container-name": "app", "io.kubernetes.cri.sandbox-name": "web", "io.kubernetes.cri.sandbox-namespace": "shop"}
	spec.Linux.CgroupsPath = "/kubepods/e2e/" + cid
	if _, err := c.Agent.CreateContainer(callCtx(t), &agentpb.CreateContainerRequest{
		ContainerId: cid, ExecId: cid, OCI: spec,
		Storages: []*agentpb.Storage{{Driver: "image_guest_pull", Source: ref, MountPoint: rootfs,
			DriverOptions: []string{`image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"container"}}`}}},
	}); err != nil {
		t.Fatalf("CreateContainer %s: %v", cid, err)
	}
	if _, err := c.Agent.StartContainer(callCtx(t), &agentpb.StartContainerRequest{ContainerId: cid}); err != nil {
		t.Fatalf("StartContainer %s: %v", cid, err)
	}
}

// readToEOF reads one stream of a process until end of stream.
func readToEOF(t *testing.T, c *client.Client, cid, eid string, stderr bool) []byte {
	t.Helper()
	var out []byte
	for {
		req := &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: eid, Len: 32 << 10}
		var r *agentpb.ReadStreamResponse
		var err error
		if stderr {
			r, err = c.Agent.ReadStderr(callCtx(t), req)
		} else {
			r, err = c.Agent.ReadStdout(callCtx(t), req)
		}
		if err != nil {
			t.Fatalf("reading %s/%s: %v", cid, eid, err)
		}
		if len(r.Data) == 0 {
			return out
		}
		out = append(out, r.Data...)
	}
}
