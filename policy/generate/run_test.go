package generate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// TestRunUnderGeneratedPolicy runs pods for real: the generated policy
// and cdh.toml reach the agent in initdata, as on a node; the runtime's
// requests come in its order (CreateSandbox, the pause container — from a
// pause bundle built here, with containerd 2.x's pod sysctls — then
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
			c := testagent.Start(t, cfg, daemon.Options{PauseBundle: pauseBundle(t)}).Agent
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
			pause := rt.pause(w, pod)
			restrictOOMScoreAdj(t, pause)
			// The runtime copies the sandbox's resolv.conf into the guest
			// before the pause container binds it.
			for _, m := range pause.OCI.Mounts {
				if strings.HasPrefix(m.Source, filepath.Join(rt.runDir, "shared")) {
					conf := []byte("nameserver 10.96.0.10\n")
					if _, err := c.CopyFile(ctx, &agentpb.CopyFileRequest{Path: m.Source, FileMode: unix.S_IFREG | 0o644, FileSize: int64(len(conf)), Data: conf}); err != nil {
						t.Fatalf("CopyFile %s: %v", m.Source, err)
					}
				}
			}
			if _, err := c.CreateContainer(ctx, pause); err != nil {
				t.Fatalf("pause container: %v", err)
			}
			if _, err := c.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: pause.ContainerId}); err != nil {
				t.Fatalf("StartContainer pause: %v", err)
			}
			// The agent wrote the pod sysctls into its network namespace
			// (the tests' own, see TestMain).
			for k, want := range containerdPodSysctls {
				got, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(k, ".", "/"))
				if err != nil || strings.Join(strings.Fields(string(got)), " ") != want {
					t.Errorf("sysctl %s: %q %v, want %q", k, got, err, want)
				}
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

// pauseBundle builds the guest image's pause bundle as rootfs/build.sh
// does: its config.json and the pause program, compiled static.
func pauseBundle(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pause_bundle")
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile("../../rootfs/pause/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("gcc", "-static", "-Os", "-s", "-o", filepath.Join(dir, "rootfs", "pause"), "../../rootfs/pause/pause.c").CombinedOutput()
	if err != nil {
		t.Fatalf("gcc pause.c: %v\n%s", err, out)
	}
	return dir
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
	restrictOOMScoreAdj(t, req)
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
	// Another error than a denial ends the read: the process is gone and
	// its output drained.
	out, err := testagent.ReadStream(ctx, c, req.ContainerId, req.ExecId, false)
	if status.Code(err) == codes.PermissionDenied {
		t.Fatalf("ReadStdout denied: %v", err)
	}
	if errOut, _ := testagent.ReadStream(ctx, c, req.ContainerId, req.ExecId, true); len(errOut) > 0 {
		t.Logf("container %s stderr: %s", ct.Name, errOut)
	}
	wr, err := c.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: req.ContainerId, ExecId: req.ExecId})
	if err != nil {
		t.Fatalf("WaitProcess %s: %v", ct.Name, err)
	}
	if _, err := c.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: req.ContainerId}); err != nil {
		t.Errorf("RemoveContainer %s: %v", ct.Name, err)
	}
	return string(out), wr.Status
}

// restrictOOMScoreAdj raises the request's OOM score to this process's, as
// containerd's restrict_oom_score_adj does where it may not lower scores:
// the tests may run without CAP_SYS_RESOURCE, which a guest's agent has.
func restrictOOMScoreAdj(t testing.TB, r *agentpb.CreateContainerRequest) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	var own int64
	if _, err := fmt.Sscan(string(b), &own); err != nil {
		t.Fatalf("/proc/self/oom_score_adj: %v", err)
	}
	r.OCI.Process.OOMScoreAdj = max(r.OCI.Process.OOMScoreAdj, own)
}
