package sandbox_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// realAgent is the real agent on a unix socket (internal/testutil/testagent) with its run dir.
type realAgent struct {
	agentpb.AgentServiceService
	run string
}

func startRealAgent(t *testing.T) *realAgent {
	t.Helper()
	testenv.RequiresRoot(t)
	cfg := testagent.Config(t)
	c := testagent.Start(t, cfg, daemon.Options{})
	// The sandbox's namespaces are released before the agent stops.
	t.Cleanup(func() {
		if _, err := c.Agent.DestroySandbox(context.Background(), &agentpb.DestroySandboxRequest{}); err != nil {
			t.Errorf("DestroySandbox: %v", err)
		}
	})
	return &realAgent{AgentServiceService: c.Agent, run: cfg.KataRunDir}
}

func apiCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// copyFile delivers a file as the runtime does with shared_fs = "none".
func (a *realAgent) copyFile(t *testing.T, path, body string) {
	t.Helper()
	_, err := a.CopyFile(apiCtx(t), &agentpb.CopyFileRequest{Path: path, FileSize: int64(len(body)), FileMode: 0o644, DirMode: 0o755, Data: []byte(body), Uid: -1, Gid: -1})
	if err != nil {
		t.Fatalf("CopyFile %s: %v", path, err)
	}
}

// output runs a container to its end and returns its stdout.
func (a *realAgent) output(t *testing.T, cid string, s *agentpb.Spec) string {
	t.Helper()
	ctx := apiCtx(t)
	if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: cid, ExecId: cid, OCI: s}); err != nil {
		t.Fatalf("CreateContainer %s: %v", cid, err)
	}
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for {
		r, err := a.ReadStdout(ctx, &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: cid, Len: 32 << 10})
		if err != nil || len(r.Data) == 0 {
			break
		}
		out.Write(r.Data)
	}
	w, err := a.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: cid})
	if err != nil || w.Status != 0 {
		t.Fatalf("WaitProcess %s: %v, %v (stdout %q)", cid, w, err, out.String())
	}
	if _, err := a.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func apiBind(s *agentpb.Spec, src, dest string, opts ...string) *agentpb.Spec {
	s.Mounts = append(s.Mounts, &agentpb.Mount{Destination: dest, Source: src, Type: "bind", Options: append([]string{"rbind"}, opts...)})
	return s
}

// The runtime's DNS lines are checked (INVALID_ARGUMENT) and containerd's
// shape is taken; the container gets the pod's resolv.conf as the runtime
// delivers it, a CopyFile'd file bound at /etc/resolv.conf (kata
// virtcontainers/fs_share_linux.go shares it like any other bind).
func TestAPIDNS(t *testing.T) {
	a := startRealAgent(t)
	ctx := apiCtx(t)
	_, err := a.CreateSandbox(ctx, &agentpb.CreateSandboxRequest{SandboxId: "sb", Dns: []string{"nameserver 10.96.0.10", "nameserver 1.2.3.4\nsearch evil.example"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "dns line 1") {
		t.Fatalf("CreateSandbox with an injected line: %v", err)
	}
	_, err = a.CreateSandbox(ctx, &agentpb.CreateSandboxRequest{SandboxId: "sb", Dns: []string{"sortlist 10.0.0.0/8"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("CreateSandbox with a sortlist line: %v", err)
	}
	if _, err := a.CreateSandbox(ctx, &agentpb.CreateSandboxRequest{SandboxId: "sb", Hostname: "pod", Dns: containerdDNS}); err != nil {
		t.Fatalf("CreateSandbox with containerd's lines: %v", err)
	}
	resolv := filepath.Join(a.run, "shared", "containers", "c1-0123456789abcdef-resolv.conf")
	a.copyFile(t, resolv, strings.Join(containerdDNS, "\n"))
	s := apiBind(pbSpecFor(testenv.KataRootfs(t, a.run, "c1"), "cat", "/etc/resolv.conf"), resolv, "/etc/resolv.conf", "ro")
	if got := a.output(t, "c1", s); got != strings.Join(containerdDNS, "\n") {
		t.Fatalf("container's resolv.conf %q", got)
	}
}

// A hostPath /dev volume reaches the agent with its host source
// (kata virtcontainers/container.go:497); the container gets the guest's.
func TestAPIHostPathDev(t *testing.T) {
	a := startRealAgent(t)
	s := apiBind(pbSpecFor(testenv.KataRootfs(t, a.run, "c1"), "sh", "-c", "test -c /host/dev/null && echo ok"), "/dev", "/host/dev")
	if got := a.output(t, "c1", s); got != "ok\n" {
		t.Fatalf("container printed %q", got)
	}
}

// A Secret volume file holding a sealed secret is never handed to the
// container sealed: without attestation (no TEE here) it is refused, as a
// sealed environment variable is.
func TestAPISealedSecretFileNeedsAttestation(t *testing.T) {
	a := startRealAgent(t)
	secret := filepath.Join(a.run, "shared", "containers", "c1-0123456789abcdef-token")
	a.copyFile(t, secret, "sealed.eyJhbGciOiJFUzI1NiJ9.e30.c2ln")
	s := apiBind(pbSpecFor(testenv.KataRootfs(t, a.run, "c1"), "cat", "/etc/token"), secret, "/etc/token", "ro")
	_, err := a.CreateContainer(apiCtx(t), &agentpb.CreateContainerRequest{ContainerId: "c1", ExecId: "c1", OCI: s})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "/etc/token") || !strings.Contains(err.Error(), "attestation") {
		t.Fatalf("CreateContainer with a sealed secret file: %v, want FAILED_PRECONDITION naming the mount", err)
	}
}

// The sandbox's shm storage is mounted with the runtime's options and size
// (kata virtcontainers/kata_agent.go:960, runtime-rs manager_inner.rs:431
// get_storage_for_sandbox), and a container's /dev/shm, which the runtime
// rewrites to an rbind of it (kata_agent.go:1150 handleShm, runtime-rs
// shm_volume.rs), is that tmpfs with those flags.
func TestAPIDevShm(t *testing.T) {
	a := startRealAgent(t)
	ctx := apiCtx(t)
	shm := filepath.Join(a.run, "sandbox", "shm")
	st := &agentpb.Storage{Driver: "ephemeral", MountPoint: shm, Source: "shm", Fstype: "tmpfs", Options: []string{"noexec", "nosuid", "nodev", "mode=1777", "size=2097152"}}
	if _, err := a.CreateSandbox(ctx, &agentpb.CreateSandboxRequest{SandboxId: "sb", Storages: []*agentpb.Storage{st}}); err != nil {
		t.Fatal(err)
	}
	s := pbSpecFor(testenv.KataRootfs(t, a.run, "c1"), "sh", "-c", "grep ' /dev/shm ' /proc/mounts; stat -c %a /dev/shm; touch /dev/shm/x && echo writable")
	s.Mounts = append(s.Mounts, &agentpb.Mount{Destination: "/dev/shm", Type: "bind", Source: shm, Options: []string{"rbind"}})
	got := a.output(t, "c1", s)
	f := strings.Fields(got)
	if len(f) < 4 || f[2] != "tmpfs" || !strings.HasSuffix(got, "\n1777\nwritable\n") {
		t.Fatalf("container's /dev/shm: %q", got)
	}
	opts := "," + f[3] + ","
	for _, o := range []string{",nosuid,", ",nodev,", ",noexec,", ",size=2048k,"} {
		if !strings.Contains(opts, o) {
			t.Errorf("container's /dev/shm options %s lack %s", f[3], strings.Trim(o, ","))
		}
	}
}

// pbSpecFor is specFor as the runtime sends it over the API.
func pbSpecFor(root string, args ...string) *agentpb.Spec {
	return &agentpb.Spec{
		Version: "1.1.0",
		Process: &agentpb.Process{Args: args, Env: []string{"PATH=/bin:/sbin"}, Cwd: "/"},
		Root:    &agentpb.Root{Path: root},
		Mounts: []*agentpb.Mount{
			{Destination: "/proc", Source: "proc", Type: "proc"},
			{Destination: "/dev", Source: "tmpfs", Type: "tmpfs", Options: []string{"nosuid", "mode=755"}},
		},
		Linux: &agentpb.Linux{Namespaces: []*agentpb.LinuxNamespace{{Type: "mount"}, {Type: "ipc"}, {Type: "uts"}, {Type: "pid"}}},
	}
}
