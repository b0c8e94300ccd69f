package generate

import (
	"context"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// onePod is a pod with an exec probe, for the requests that are not
// CreateContainer.
const onePod = `apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  containers:
  - name: app
    image: app-image
    livenessProbe:
      exec: {command: ["cat", "/tmp/healthy"]}
  - name: shell
    image: shell-image
    tty: true
    stdin: true
    livenessProbe:
      exec: {command: ["true"]}
`

// loadFake is the agent's engine with the policy generated for yaml
// (fake images).
func loadFake(t testing.TB, yaml string) *policy.Policy {
	t.Helper()
	_, text := buildFake(t, yaml, "")
	p, err := policy.Load(context.Background(), text, "generated")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// decideDoc is the engine's decision, with the rules' explanation when it
// denies.
func decideDoc(t testing.TB, p *policy.Policy, kind string, doc map[string]any) policy.Decision {
	t.Helper()
	d, err := p.Explain(context.Background(), kind, doc)
	if err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	return d
}

// sharedFile is a path the runtime copies a shared file to, as
// sharedPath names it under /run/kata-containers.
func sharedFile(rest string) string {
	return "/run/kata-containers/shared/containers/" + containerID("p", "app") + "-0123456789abcdef-" + rest
}

// TestCopyFileRefused: CopyFile writes into the shared directory with no
// guard but the policy on Kata's agent (src/agent/src/rpc.rs do_copy_file
// only keeps writes beneath the directory, and says its symlinks may point
// anywhere). The runtime's own copies are allowed; paths climbing out,
// file types the agent would misread, symlinks as a mount source and
// symlinks pointing up or to an absolute path are refused, naming the
// field.
func TestCopyFileRefused(t *testing.T) {
	p := loadFake(t, onePod)
	regular := func(path string) *agentpb.CopyFileRequest {
		return &agentpb.CopyFileRequest{Path: path, FileMode: unix.S_IFREG | 0o644, FileSize: 1, Data: []byte("x")}
	}
	dir := func(path string) *agentpb.CopyFileRequest {
		return &agentpb.CopyFileRequest{Path: path, FileMode: unix.S_IFDIR | 0o755, DirMode: unix.S_IFDIR | 0o755}
	}
	link := func(path, target string) *agentpb.CopyFileRequest {
		return &agentpb.CopyFileRequest{Path: path, FileMode: unix.S_IFLNK | 0o777, FileSize: int64(len(target)), Data: []byte(target)}
	}
	allowed := map[string]*agentpb.CopyFileRequest{
		"resolv.conf":             regular(sharedFile("resolv.conf")),
		"configMap directory":     dir(sharedFile("config")),
		"file in a directory":     regular(sharedFile("config/..2026_11_30_05_00_00.123/key")),
		"atomic writer's ..data":  link(sharedFile("config/..data"), "..2026_11_30_05_00_00.123"),
		"key through ..data":      link(sharedFile("config/key"), "..data/key"),
		"dots in a name":          regular(sharedFile("foo../bar")),
		"nested directory":        dir(sharedFile("config/sub")),
		"relative link downwards": link(sharedFile("config/a"), "sub/b"),
	}
	for name, r := range allowed {
		doc, err := input.CopyFile(r)
		if err != nil {
			t.Fatal(err)
		}
		if d := decideDoc(t, p, "CopyFileRequest", doc); !d.Allowed {
			t.Errorf("%s: denied: %s", name, d.Prints)
		}
	}
	denied := []struct {
		name, field string
		r           *agentpb.CopyFileRequest
	}{
		{"traversal", "path", regular(sharedFile("foo/../../../../../etc/ssl/cert.pem"))},
		{"parent directory", "path", dir(sharedFile("foo/.."))},
		{"traversal at the end", "path", regular(sharedFile("foo/bar/.."))},
		{"block device", "file_type", &agentpb.CopyFileRequest{Path: sharedFile("foo/bar"), FileMode: unix.S_IFBLK | 0o600}},
		{"socket", "file_type", &agentpb.CopyFileRequest{Path: sharedFile("foo"), FileMode: unix.S_IFSOCK | 0o600}},
		{"no type bits", "file_type", &agentpb.CopyFileRequest{Path: sharedFile("foo"), FileMode: 0o644}},
		{"symlink as a mount source", "file_type", link(sharedFile("resolv.conf"), "abc")},
		{"symlink up, leading", "symlink_target", link(sharedFile("foo/lnk"), "../abc")},
		{"symlink up, middle", "symlink_target", link(sharedFile("foo/lnk"), "a/../../b")},
		{"symlink up, trailing", "symlink_target", link(sharedFile("foo/lnk"), "foo/..")},
		{"symlink up", "symlink_target", link(sharedFile("foo/lnk"), "..")},
		{"symlink absolute", "symlink_target", link(sharedFile("foo/lnk"), "/etc/shadow")},
	}
	for _, c := range denied {
		doc, err := input.CopyFile(c.r)
		if err != nil {
			t.Fatal(err)
		}
		if d := decideDoc(t, p, "CopyFileRequest", doc); d.Allowed || !strings.HasPrefix(d.Prints, c.field+":") {
			t.Errorf("%s: allowed %v, denial %q does not lead with %q", c.name, d.Allowed, d.Prints, c.field)
		}
	}
}

// runtimeExec is the ExecProcess the Go runtime sends to run args in the
// container cc created (a probe, a lifecycle hook, kubectl exec):
// containerd runs the container's own process with other Args and
// Terminal, setting TERM=xterm with a terminal
// (internal/cri/server/container_execsync.go execInternal); the Kata shim
// passes on only Args, Env, User (uid, gid, additional gids), Cwd and
// Terminal (src/runtime/pkg/containerd-shim-v2/exec.go newExec,
// src/runtime/virtcontainers/kata_agent.go cmdToKataProcess).
func runtimeExec(cc *agentpb.CreateContainerRequest, args []string, tty bool) *agentpb.ExecProcessRequest {
	p := cc.OCI.Process
	env := slices.Clone(p.Env)
	if tty {
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, "TERM=") })
		env = append(env, "TERM=xterm")
	}
	return &agentpb.ExecProcessRequest{
		ContainerId: cc.ContainerId, ExecId: "6f0c1c52-6a4e-4f7e-9a51-0d1b7a3e2c11",
		Process: &agentpb.Process{
			Args: args, Env: env, Cwd: p.Cwd, Terminal: tty,
			User: &agentpb.User{UID: p.User.UID, GID: p.User.GID, AdditionalGids: slices.Clone(p.User.AdditionalGids)},
		},
	}
}

// TestExecProcessPinned: an exec probe or hook command runs as its
// container's own process. What the runtimes send is allowed (the Go
// runtime's few fields; runtime-rs's whole process of the container, with
// its capabilities); a host that adds environment, changes the user, the
// working directory, capabilities, LSM profiles or the string user, or
// asks for a terminal the container does not have, is refused, naming the
// field.
func TestExecProcessPinned(t *testing.T) {
	p := loadFake(t, onePod)
	in, err := ParseInput([]byte(onePod), defaults(t).PassThrough)
	if err != nil {
		t.Fatal(err)
	}
	rt := &miniRuntime{t: t, in: in, images: fakeImages(in), runDir: "/run/kata-containers"}
	w := in.Workloads[0]
	pod := rt.podName(w)
	app := rt.request(w, pod, w.Spec.Containers[0])
	shell := rt.request(w, pod, w.Spec.Containers[1])
	probe := []string{"cat", "/tmp/healthy"}
	decide := func(r *agentpb.ExecProcessRequest) policy.Decision {
		return decideDoc(t, p, "ExecProcessRequest", input.Encode(r))
	}

	allowed := map[string]*agentpb.ExecProcessRequest{
		"Go runtime's probe":       runtimeExec(app, probe, false),
		"tty container's terminal": runtimeExec(shell, []string{"true"}, true),
		"tty container's probe":    runtimeExec(shell, []string{"true"}, false),
	}
	// runtime-rs sends containerd's exec process whole (runtime-rs
	// crates/runtimes/virt_container/src/container_manager/
	// container_inner.rs start_exec_process): the container's own.
	rs := runtimeExec(app, probe, false)
	rs.Process = proto.Clone(app.OCI.Process).(*agentpb.Process)
	rs.Process.Args = probe
	allowed["runtime-rs's probe"] = rs
	for name, r := range allowed {
		if d := decide(r); !d.Allowed {
			t.Errorf("%s: denied: %s", name, d.Prints)
		}
	}

	denied := []struct {
		name, field string
		apply       func(r *agentpb.ExecProcessRequest)
	}{
		{"not a probe", "process.Args", func(r *agentpb.ExecProcessRequest) { r.Process.Args = []string{"/bin/sh"} }},
		{"LD_PRELOAD", "process.Env", func(r *agentpb.ExecProcessRequest) {
			r.Process.Env = append(r.Process.Env, "LD_PRELOAD=/tmp/evil.so")
		}},
		{"env dropped", "process.Env", func(r *agentpb.ExecProcessRequest) { r.Process.Env = r.Process.Env[1:] }},
		{"other user", "process.User", func(r *agentpb.ExecProcessRequest) { r.Process.User.UID = 4242 }},
		{"other group", "process.User", func(r *agentpb.ExecProcessRequest) { r.Process.User.GID = 4242 }},
		{"extra group", "process.User.AdditionalGids", func(r *agentpb.ExecProcessRequest) {
			r.Process.User.AdditionalGids = append(r.Process.User.AdditionalGids, 4242)
		}},
		{"user name", "process.User.Username", func(r *agentpb.ExecProcessRequest) { r.Process.User.Username = "root" }},
		{"cwd", "process.Cwd", func(r *agentpb.ExecProcessRequest) { r.Process.Cwd = "/tmp" }},
		{"capability", "process.Capabilities", func(r *agentpb.ExecProcessRequest) {
			r.Process.Capabilities = &agentpb.LinuxCapabilities{Bounding: []string{"CAP_SYS_ADMIN"}, Effective: []string{"CAP_SYS_ADMIN"}, Permitted: []string{"CAP_SYS_ADMIN"}}
		}},
		{"string user", "string_user", func(r *agentpb.ExecProcessRequest) { r.StringUser = &agentpb.StringUser{Uid: "0"} }},
		{"AppArmor", "process.ApparmorProfile", func(r *agentpb.ExecProcessRequest) { r.Process.ApparmorProfile = "unconfined" }},
		{"SELinux", "process.SelinuxLabel", func(r *agentpb.ExecProcessRequest) {
			r.Process.SelinuxLabel = "system_u:system_r:spc_t:s0"
		}},
		{"terminal", "process.Terminal", func(r *agentpb.ExecProcessRequest) { r.Process.Terminal = true }},
		{"no process", "process", func(r *agentpb.ExecProcessRequest) { r.Process = nil }},
		{"rlimit", "process.Rlimits", func(r *agentpb.ExecProcessRequest) {
			r.Process.Rlimits = []*agentpb.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1 << 20, Soft: 1 << 20}}
		}},
	}
	for _, c := range denied {
		r := runtimeExec(app, probe, false)
		c.apply(r)
		if d := decide(r); d.Allowed || !strings.Contains(d.Prints, c.field+":") {
			t.Errorf("%s: allowed %v, denial %q does not name %q", c.name, d.Allowed, d.Prints, c.field)
		}
	}
}
