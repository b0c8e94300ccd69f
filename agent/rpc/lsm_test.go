package rpc_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/agent/internal/system"
	"github.com/cocoon-tee/cocoon/agent/rpc"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// containerdAppArmorProfile is the profile containerd's CRI plugin names in
// every container spec on a host with AppArmor (containerd
// internal/cri/server/container_create_linux.go, profileNamePrefix
// "cri-containerd.apparmor.d"); Kata 4.1's runtime forwards it unchanged
// (src/runtime/virtcontainers/kata_agent.go constrainGRPCSpec, line 1055,
// touches only the SELinux label) and Kata's agent never reads it
// (src/agent/rustjail has no AppArmor code).
const containerdAppArmorProfile = "cri-containerd.apparmor.d"

// lsmSpec is a container that reports the AppArmor label it runs under.
func lsmSpec(root string) *agentpb.Spec {
	s := spec(root, "sh", "-c", "cat /proc/self/attr/current 2>/dev/null; echo ran; exec sleep 1000")
	s.Process.ApparmorProfile = containerdAppArmorProfile
	return s
}

// TestAppArmorProfileThroughAgent sends what containerd on Ubuntu sends to
// the real agent on this machine. Where the kernel runs no AppArmor (the
// Kata guest's case) the container and an exec with the profile run;
// where it does, the profile is applied, which shows in the process's
// label or in libcontainer's refusal of a profile the kernel has not loaded.
func TestAppArmorProfileThroughAgent(t *testing.T) {
	a := startAgent(t, "")
	ctx := ctxT(t)
	hasAppArmor := system.New(system.Options{}).LSMs().AppArmor
	_, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "aa", ExecId: "aa", OCI: lsmSpec(a.rootfs(t, "aa"))})
	if hasAppArmor {
		if err != nil {
			if !strings.Contains(err.Error(), "apparmor") {
				t.Fatalf("AppArmor host: %v does not name AppArmor", err)
			}
			return
		}
		must(t)(a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "aa"}))
		if out := a.readLine(t, "aa"); !strings.Contains(out, containerdAppArmorProfile) {
			t.Fatalf("AppArmor host: the profile was not applied: %q", out)
		}
		return
	}
	if err != nil {
		t.Fatalf("guest without AppArmor refused the profile: %v", err)
	}
	must(t)(a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "aa"}))
	if out := a.readLine(t, "aa"); out != "ran\n" {
		t.Fatalf("output %q", out)
	}
	// Exec'd processes carry the profile too (containerd copies the
	// container's into the exec spec).
	must(t)(a.ExecProcess(ctx, &agentpb.ExecProcessRequest{ContainerId: "aa", ExecId: "e", Process: &agentpb.Process{
		Args: []string{"true"}, Env: []string{"PATH=/bin"}, Cwd: "/", ApparmorProfile: containerdAppArmorProfile,
	}}))
	if st := a.wait(t, "aa", "e"); st != 0 {
		t.Fatalf("exec exit status %d", st)
	}
	a.remove(t, "aa")
}

// readLine reads the container's first output, which ends in a newline.
func (a *agent) readLine(t *testing.T, cid string) string {
	t.Helper()
	var out []byte
	for !strings.HasSuffix(string(out), "\n") {
		r := must(t)(a.ReadStdout(ctxT(t), &agentpb.ReadStreamRequest{ContainerId: cid, Len: 4096})).(*agentpb.ReadStreamResponse)
		if len(r.Data) == 0 {
			break
		}
		out = append(out, r.Data...)
	}
	return string(out)
}

// TestLSMLabelsFollowTheGuestKernel runs the agent's service over a real
// sandbox with the security-module probe pointed at fake sysfs trees, so
// both answers are exercised whatever this machine runs: labels of absent
// modules are dropped and the container runs; labels of a present module
// reach libcontainer, which applies them (and here, with no such module in
// the real kernel, fails saying so).
func TestLSMLabelsFollowTheGuestKernel(t *testing.T) {
	if system.New(system.Options{}).LSMs() != (system.LSMs{}) {
		t.Fatal("this test expects a kernel without AppArmor and SELinux, to see libcontainer apply kept labels")
	}
	for _, tc := range []struct {
		name    string
		sysfs   map[string]string
		process func(*agentpb.Process)
		linux   func(*agentpb.Linux)
		wantErr string
	}{
		{"apparmor absent", nil, func(p *agentpb.Process) { p.ApparmorProfile = containerdAppArmorProfile }, nil, ""},
		{"apparmor present", map[string]string{"module/apparmor/parameters/enabled": "Y\n"}, func(p *agentpb.Process) { p.ApparmorProfile = containerdAppArmorProfile }, nil, "apparmor"},
		{"selinux absent", nil, func(p *agentpb.Process) { p.SelinuxLabel = "system_u:system_r:container_t:s0:c1,c2" },
			func(l *agentpb.Linux) { l.MountLabel = "system_u:object_r:container_file_t:s0:c1,c2" }, ""},
		{"selinux present", map[string]string{"kernel/security/lsm": "capability,selinux"}, func(p *agentpb.Process) { p.SelinuxLabel = "system_u:system_r:container_t:s0:c1,c2" }, nil, "selinux"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, run := lsmService(t, tc.sysfs)
			ctx := ctxT(t)
			s := spec(testenv.KataRootfs(t, run, "c"), "true")
			tc.process(s.Process)
			if tc.linux != nil {
				tc.linux(s.Linux)
			}
			_, err := svc.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "c", ExecId: "c", OCI: s})
			if err == nil {
				_, err = svc.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "c"})
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("labels of absent modules were not dropped: %v", err)
				}
				w, err := svc.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: "c", ExecId: "c"})
				if err != nil || w.Status != 0 {
					t.Fatalf("wait: %v %v", w, err)
				}
				if s.Process.ApparmorProfile == "" && s.Process.SelinuxLabel == "" {
					t.Fatal("the request was changed; the policy must see what the host sent")
				}
				return
			}
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), tc.wantErr) {
				t.Fatalf("labels of a present module were not passed on: %v", err)
			}
		})
	}
}

// lsmService is the agent's service over a real sandbox and a guest whose
// sysfs is a fake tree with files.
func lsmService(t *testing.T, files map[string]string) (*rpc.Service, string) {
	t.Helper()
	cfg := testagent.Config(t)
	sys := t.TempDir()
	for name, data := range files {
		p := filepath.Join(sys, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stor, err := storage.NewDefault(storage.Options{KataRunDir: cfg.KataRunDir, HotplugTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pod, err := sandbox.New(sandbox.Options{KataRunDir: cfg.KataRunDir, StateDir: cfg.StateDir, CgroupParent: cfg.CgroupParent, Storage: stor})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pod.Destroy(context.Background()) })
	svc := rpc.New(rpc.Deps{Sandbox: pod, System: rpc.System{Guest: system.New(system.Options{Sysfs: sys})}})
	return svc, cfg.KataRunDir
}
