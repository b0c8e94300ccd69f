package generate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/ci/testagent"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// TestMain lets the in-process agent re-execute this binary as container
// init.
func TestMain(m *testing.M) {
	container.InitIfRequested()
	os.Exit(m.Run())
}

// TestRunUnderGeneratedPolicy runs pods for real: the generated policy
// and cdh.toml reach the agent in initdata, as on a node; the runtime's
// requests come in its order (CreateSandbox, the pause container, then
// per container CopyFile of the files it binds, CreateContainer pulling
// the image by digest in the guest, StartContainer, ReadStdout to EOF,
// WaitProcess, RemoveContainer), and each container's output and exit
// status are the pod spec's.
func TestRunUnderGeneratedPolicy(t *testing.T) {
	ti := buildImages(t)
	yamls := corpus(t, ti.reg.Addr)
	for name, want := range map[string]map[string]string{
		"01-pod-single": {"hello": "hello world\n"},
		"02-pod-multi":  {"web": "mode=production uid=0\n", "tool": "--interval 30\n"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testagent.Config(t)
			// Pulls in the guest read registries.conf from cdh.toml, the
			// way a pod's initdata configures them.
			res, err := Generate(context.Background(), yamls[name], Options{
				Settings: runDirSettings(t, cfg.KataRunDir),
				Images:   ImageOptions{RegistriesConf: ti.conf},
				CDHToml:  fmt.Sprintf("[image]\nregistry_configuration_uri = %q\n", "file://"+ti.conf),
			})
			if err != nil {
				t.Fatal(err)
			}
			useInitdata(t, &cfg, res.Initdata)
			c := testagent.Start(t, cfg, daemon.Options{}).Agent
			in, err := ParseInput(res.YAML, defaults(t).PassThrough)
			if err != nil {
				t.Fatal(err)
			}
			rt := &miniRuntime{t: t, in: in, images: res.Images, runDir: cfg.KataRunDir}
			w := in.Workloads[0]
			pod := rt.podName(w)
			ctx := callCtx(t)
			shm := filepath.Join(cfg.KataRunDir, "sandbox", "shm")
			if _, err := c.CreateSandbox(ctx, &agentpb.CreateSandboxRequest{
				Hostname: pod, SandboxId: containerID(pod, "sandbox"),
				Storages: []*agentpb.Storage{{Driver: "ephemeral", Source: "shm", Fstype: "tmpfs", MountPoint: shm,
					Options: []string{"noexec", "nosuid", "nodev", "mode=1777", "size=67108864"}}},
			}); err != nil {
				t.Fatalf("CreateSandbox: %v", err)
			}
			t.Cleanup(func() { _, _ = c.DestroySandbox(context.Background(), &agentpb.DestroySandboxRequest{}) })
			// The policy lets the pause container through; this machine
			// has no guest image, so the agent finds no pause bundle.
			if _, err := c.CreateContainer(ctx, rt.pause(pod)); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "pause bundle") {
				t.Fatalf("pause container: %v, want the policy to allow it and the agent to find no pause bundle", err)
			}
			for _, ct := range w.Spec.Containers {
				out, st := runContainer(t, c, rt, w, pod, ct)
				if out != want[ct.Name] || st != 0 {
					t.Errorf("container %s printed %q and exited %d, want %q and 0", ct.Name, out, st, want[ct.Name])
				}
			}
		})
	}
}

// useInitdata writes initdata as the disk image the runtime attaches.
func useInitdata(t testing.TB, cfg *config.Config, id *initdata.Initdata) {
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

// runContainer sends what the runtime sends for one container and returns
// its stdout and exit status.
func runContainer(t testing.TB, c agentpb.AgentServiceService, rt *miniRuntime, w *Workload, pod string, ct corev1.Container) (string, int32) {
	t.Helper()
	ctx := callCtx(t)
	req := rt.request(w, pod, ct)
	// With shared_fs = "none" the runtime copies every file a mount binds
	// into the guest first; a directory (the service-account token) entry
	// by entry.
	for _, m := range req.OCI.Mounts {
		if !strings.HasPrefix(m.Source, filepath.Join(rt.runDir, "shared")) {
			continue
		}
		files := []*agentpb.CopyFileRequest{{Path: m.Source, FileMode: unix.S_IFREG | 0o644, FileSize: 0}}
		if filepath.Base(m.Destination) == "serviceaccount" {
			token := []byte("header.payload.signature")
			files = []*agentpb.CopyFileRequest{
				{Path: m.Source, FileMode: unix.S_IFDIR | 0o755, DirMode: 1<<31 | 0o750},
				{Path: m.Source + "/token", FileMode: unix.S_IFREG | 0o644, FileSize: int64(len(token)), Data: token, DirMode: 1<<31 | 0o750},
			}
		}
		for _, f := range files {
			if _, err := c.CopyFile(ctx, f); err != nil {
				t.Fatalf("CopyFile %s: %v", f.Path, err)
			}
		}
	}
	if _, err := c.CreateContainer(ctx, req); err != nil {
		t.Fatalf("CreateContainer %s: %v", ct.Name, err)
	}
	if _, err := c.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: req.ContainerId}); err != nil {
		t.Fatalf("StartContainer %s: %v", ct.Name, err)
	}
	var out bytes.Buffer
	for {
		r, err := c.ReadStdout(ctx, &agentpb.ReadStreamRequest{ContainerId: req.ContainerId, ExecId: req.ExecId, Len: 32 << 10})
		if status.Code(err) == codes.PermissionDenied {
			t.Fatalf("ReadStdout denied: %v", err)
		}
		if err != nil || len(r.Data) == 0 {
			break // EOF, or the process is gone and its output drained
		}
		out.Write(r.Data)
	}
	var errOut bytes.Buffer
	for {
		r, err := c.ReadStderr(ctx, &agentpb.ReadStreamRequest{ContainerId: req.ContainerId, ExecId: req.ExecId, Len: 32 << 10})
		if err != nil || len(r.Data) == 0 {
			break
		}
		errOut.Write(r.Data)
	}
	if errOut.Len() > 0 {
		t.Logf("container %s stderr: %s", ct.Name, errOut.String())
	}
	wr, err := c.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: req.ContainerId, ExecId: req.ExecId})
	if err != nil {
		t.Fatalf("WaitProcess %s: %v", ct.Name, err)
	}
	if _, err := c.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: req.ContainerId}); err != nil {
		t.Errorf("RemoveContainer %s: %v", ct.Name, err)
	}
	return out.String(), wr.Status
}
