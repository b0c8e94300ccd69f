package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// initdataImage writes the disk the Kata runtime attaches for a pod's
// initdata annotation, using cocoonctl as an operator would.
// files maps initdata keys (cdh.toml, aa.toml) to their content.
func initdataImage(t *testing.T, policy string, files map[string]string) string {
	t.Helper()
	a := artifacts(t)
	dir := t.TempDir()
	doc := filepath.Join(dir, "initdata.toml")
	img := filepath.Join(dir, "initdata.img")
	ctl := filepath.Join(a.Root, "bin", "cocoonctl")
	args := []string{"initdata", "create", "--policy", policy}
	for k, body := range files {
		p := filepath.Join(dir, k)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--file", k+"="+p)
	}
	create := exec.Command(ctl, args...)
	out, err := create.Output()
	if err != nil {
		t.Fatalf("cocoonctl initdata create: %v", err)
	}
	if err := os.WriteFile(doc, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(ctl, "initdata", "image", doc, "-o", img).CombinedOutput(); err != nil {
		t.Fatalf("cocoonctl initdata image: %v\n%s", err, out)
	}
	return img
}

// pauseSpec is the sandbox container as the runtime sends it for guest
// pull: the rootfs comes from the guest image's /pause_bundle.
func pauseSpec(sid string) *agentpb.Spec {
	return &agentpb.Spec{
		Version:  "1.1.0",
		Process:  &agentpb.Process{Args: []string{"/pause"}, Cwd: "/", User: &agentpb.User{UID: 65535, GID: 65535}, Env: []string{"PATH=/"}},
		Root:     &agentpb.Root{Path: "/run/kata-containers/" + sid + "/rootfs", Readonly: true},
		Hostname: "e2e-pod",
		Mounts: []*agentpb.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Annotations: map[string]string{
			"io.kubernetes.cri.container-type": "sandbox",
			"io.kubernetes.cri.sandbox-id":     sid,
		},
		Linux: &agentpb.Linux{
			CgroupsPath: "/kubepods/e2e/" + sid,
			Namespaces:  []*agentpb.LinuxNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}},
		},
	}
}

// TestPodWithInitdataPolicy attaches an initdata disk whose policy forbids
// ExecProcess, runs the pod's pause container from the guest image, and
// checks that exec is refused while the rest of the lifecycle works.
func TestPodWithInitdataPolicy(t *testing.T) {
	a := artifacts(t)
	reg := startTLSRegistry(t)
	ref := reg.pushBusybox(t, "e2e/busybox")
	cdh := "[image]\nextra_root_certificates = [" + strconv.Quote(reg.CAPEM) + "]\n"
	img := initdataImage(t, filepath.Join(a.Root, "policy", "rego", "allow-all-except-exec.rego"), map[string]string{"cdh.toml": cdh})
	v := boot(t, VMConfig{Drives: []string{img}})
	c := connect(t, v)
	const sid = "e2e-pod"

	t.Run("policy-from-initdata", func(t *testing.T) {
		rec := consoleRecord(t, v, "policy installed")
		if !strings.Contains(rec.Str("source"), "initdata") {
			t.Fatalf("policy record %v: want the policy from the initdata disk", rec)
		}
	})

	t.Run("create-sandbox", func(t *testing.T) {
		if _, err := c.Agent.CreateSandbox(callCtx(t), &agentpb.CreateSandboxRequest{Hostname: "e2e-pod", SandboxId: sid}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("pause-container", func(t *testing.T) {
		meta := `image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"sandbox"}}`
		_, err := c.Agent.CreateContainer(callCtx(t), &agentpb.CreateContainerRequest{
			ContainerId: sid, ExecId: sid, OCI: pauseSpec(sid), SandboxPidns: true,
			Storages: []*agentpb.Storage{{
				Driver: "image_guest_pull", Source: "pause", DriverOptions: []string{meta},
				MountPoint: "/run/kata-containers/" + sid + "/rootfs",
			}},
		})
		if err != nil {
			t.Fatalf("CreateContainer: %v", err)
		}
		if _, err := c.Agent.StartContainer(callCtx(t), &agentpb.StartContainerRequest{ContainerId: sid}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
	})

	t.Run("guest-pull-workload", func(t *testing.T) {
		const cid = "e2e-hello"
		rootfs := "/run/kata-containers/" + cid + "/rootfs"
		spec := pauseSpec(sid)
		spec.Process = &agentpb.Process{Args: []string{"/bin/echo", "hello from the guest"}, Cwd: "/", User: &agentpb.User{}, Env: []string{"PATH=/bin"}}
		spec.Root = &agentpb.Root{Path: rootfs}
		spec.Annotations = map[string]string{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sid}
		spec.Linux.CgroupsPath = "/kubepods/e2e/" + cid
		_, err := c.Agent.CreateContainer(callCtx(t), &agentpb.CreateContainerRequest{
			ContainerId: cid, ExecId: cid, OCI: spec,
			Storages: []*agentpb.Storage{{
				Driver: "image_guest_pull", Source: ref, MountPoint: rootfs,
				DriverOptions: []string{`image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"container"}}`},
			}},
		})
		if err != nil {
			t.Fatalf("CreateContainer pulling %s in the guest: %v", ref, err)
		}
		if _, err := c.Agent.StartContainer(callCtx(t), &agentpb.StartContainerRequest{ContainerId: cid}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		var out []byte
		for {
			r, err := c.Agent.ReadStdout(callCtx(t), &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: cid, Len: 32 << 10})
			if err != nil || len(r.Data) == 0 {
				break // EOF is empty data, or an error once the process is gone
			}
			out = append(out, r.Data...)
		}
		w, err := c.Agent.WaitProcess(callCtx(t), &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: cid})
		if err != nil {
			t.Fatalf("WaitProcess: %v", err)
		}
		if w.Status != 0 || string(out) != "hello from the guest\n" {
			t.Errorf("workload exited %d with output %q", w.Status, out)
		}
		if _, err := c.Agent.RemoveContainer(callCtx(t), &agentpb.RemoveContainerRequest{ContainerId: cid}); err != nil {
			t.Errorf("RemoveContainer: %v", err)
		}
	})

	t.Run("exec-denied", func(t *testing.T) {
		_, err := c.Agent.ExecProcess(callCtx(t), &agentpb.ExecProcessRequest{
			ContainerId: sid, ExecId: "sh",
			Process: &agentpb.Process{Args: []string{"/pause"}, Cwd: "/", User: &agentpb.User{}},
		})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "is blocked by policy") {
			t.Fatalf("ExecProcess: %v, want PERMISSION_DENIED by policy", err)
		}
		// The denial is in the guest's decision log, where an operator
		// would look for it.
		found := false
		for _, d := range guestStatus(t, v).Decisions {
			found = found || (d.Kind == "decision" && d.Request == "ExecProcessRequest" && d.Allowed != nil && !*d.Allowed)
		}
		if !found {
			t.Error("no denied ExecProcessRequest in the decision log")
		}
	})

	t.Run("pause-exits-on-sigterm", func(t *testing.T) {
		// StartContainer returns once the container's init is released,
		// which under TCG can be well before /pause has installed its
		// handlers; a SIGTERM before that is turned into SIGKILL (Kata's
		// rule for a PID 1 that does not catch it). Wait for the handler:
		// a bounded poll of guestprobe's view of /proc/<pid>/status,
		// because nothing reports the event. /pause installs its handlers
		// silently (sigaction, then pause()), and neither the agent nor
		// the guest's kernel tells the host when a process's caught
		// signals change.
		deadline := time.Now().Add(time.Minute)
		for {
			var pause *Proc
			for _, p := range guestStatus(t, v).Procs {
				if p.Name == "pause" {
					pause = &p
				}
			}
			if pause != nil && pause.SigCgt&(1<<(unix.SIGTERM-1)) != 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no pause process catching SIGTERM in the guest: %+v", pause)
			}
			time.Sleep(200 * time.Millisecond)
		}
		req := &agentpb.SignalProcessRequest{ContainerId: sid, ExecId: sid, Signal: uint32(unix.SIGTERM)}
		if _, err := c.Agent.SignalProcess(callCtx(t), req); err != nil {
			t.Fatalf("SignalProcess: %v", err)
		}
		r, err := c.Agent.WaitProcess(callCtx(t), &agentpb.WaitProcessRequest{ContainerId: sid, ExecId: sid})
		if err != nil {
			t.Fatalf("WaitProcess: %v", err)
		}
		if r.Status != 0 {
			t.Errorf("pause exit status %d, want 0 (it handles SIGTERM)", r.Status)
		}
		if _, err := c.Agent.RemoveContainer(callCtx(t), &agentpb.RemoveContainerRequest{ContainerId: sid}); err != nil {
			t.Errorf("RemoveContainer: %v", err)
		}
	})

	t.Run("destroy-sandbox-powers-off", func(t *testing.T) {
		if _, err := c.Agent.DestroySandbox(callCtx(t), &agentpb.DestroySandboxRequest{}); err != nil {
			t.Fatal(err)
		}
		// The runtime is done with the agent once the reply is in
		// (virtcontainers/kata_agent.go stopSandbox, then the VM is stopped);
		// the agent powers off when the host hangs up.
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), poweroffBound)
		defer cancel()
		if err := v.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
