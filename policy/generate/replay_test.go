package generate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"

	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// testImages are the images the corpus uses, built with umoci and pushed
// to a real registry: web (users in its top layer), tool (its top layer
// deletes /etc/group), user (runs as the image's user "app").
type testImages struct {
	reg      *testregistry.Registry
	conf     string // registries.conf reaching the registry over http
	dir      string
	baseSize int64
}

const (
	basePasswd = "root:x:0:0:root:/root:/bin/sh\n"
	webPasswd  = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
	webGroup   = "root:x:0:\napp:x:1000:\nwheel:x:10:app\n"
)

func buildImages(t testing.TB) *testImages {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("needs root (umoci, the agent)")
	}
	reg := testregistry.Start(t)
	dir := t.TempDir()
	noise := make([]byte, 1<<20)
	_, _ = rand.Read(noise)
	// busybox makes the images runnable: the corpus's pods run for real.
	busybox := func(t testing.TB, rootfs string) { testenv.BusyboxRootfs(t, rootfs) }
	base := testregistry.Build(t, filepath.Join(dir, "base"), []string{"/bin/sh"}, busybox,
		testregistry.Files(map[string]string{"/etc/passwd": basePasswd, "/etc/group": "root:x:0:\n", "/usr/lib/blob.bin": string(noise)}))
	web := testregistry.Extend(t, base, filepath.Join(dir, "web"),
		testregistry.Files(map[string]string{"/etc/passwd": webPasswd, "/etc/group": webGroup, "/srv/httpd.sh": "#!/bin/sh\n"}))
	tool := testregistry.Extend(t, base, filepath.Join(dir, "tool"), testregistry.Remove("/etc/group"))
	user := testregistry.Extend(t, web, filepath.Join(dir, "user"), testregistry.Files(map[string]string{"/srv/index.html": "hi\n"}))
	testregistry.Run(t, nil, "umoci", "config", "--image", strings.TrimPrefix(user, "oci:"), "--config.user", "app")
	reg.Push(t, web, "web:v1", nil)
	reg.Push(t, tool, "tool:v1", nil, "--dest-compress-format", "zstd")
	reg.Push(t, user, "user:v1", nil)
	conf := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", reg.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testImages{reg: reg, conf: conf, dir: dir}
}

// corpus reads the test workloads with the registry's address filled in.
func corpus(t testing.TB, addr string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/corpus/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".yaml")] = []byte(strings.ReplaceAll(string(b), "REGISTRY", addr))
	}
	return out
}

// TestCorpusReplay generates a policy for every workload of the corpus,
// checks it against its golden file, installs it in a real agent and
// replays what the runtime would send for the pod — all allowed — and
// mutations of it — all denied, naming the field.
func TestCorpusReplay(t *testing.T) {
	ti := buildImages(t)
	cache := t.TempDir()
	for name, yaml := range corpus(t, ti.reg.Addr) {
		t.Run(name, func(t *testing.T) {
			c, runDir := startAgent(t)
			res, err := Generate(context.Background(), yaml, Options{Settings: runDirSettings(t, runDir), Images: ImageOptions{RegistriesConf: ti.conf, CacheDir: cache}})
			if err != nil {
				t.Fatal(err)
			}
			setPolicy(t, c, res.Policy)
			checkGolden(t, name, res, ti.reg.Addr, runDir)
			in, err := ParseInput(res.YAML, defaults(t).PassThrough)
			if err != nil {
				t.Fatalf("rewritten YAML: %v", err)
			}
			for _, w := range in.Workloads {
				for _, ref := range workloadImages(w) {
					if !digestPinned(ref) {
						t.Fatalf("rewritten YAML still names %q", ref)
					}
				}
			}
			rt := &miniRuntime{t: t, in: in, images: res.Images, runDir: runDir}
			q := prepareCreate(t, res.Policy)
			eng, err := policy.Load(context.Background(), res.Policy, "generated")
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range in.Workloads {
				pod := rt.podName(w)
				// Checked directly: the agent sets up the sandbox once.
				if d := decideSandbox(t, eng, rt.sandbox(w, pod)); !d.Allowed {
					t.Errorf("CreateSandbox of %s denied: %s", pod, d.Prints)
				}
				for _, m := range sandboxMutations() {
					req := rt.sandbox(w, pod)
					m.apply(req)
					if d := decideSandbox(t, eng, req); d.Allowed || !strings.Contains(d.Prints, m.field) {
						t.Errorf("CreateSandbox %s: allowed %v, denial %q does not name %q", m.name, d.Allowed, d.Prints, m.field)
					}
				}
				expectAllowed(t, "pause of "+pod, callCreate(c, rt.pause(w, pod)))
				decideCreate(t, q, rt.pause(w, pod))
				for _, m := range pauseMutations(w) {
					req := rt.pause(w, pod)
					if m.applies != nil && !m.applies(req) {
						continue
					}
					m.apply(req)
					expectDenied(t, m.name, callCreate(c, req), m.field)
					decideCreate(t, q, req)
				}
				for _, ct := range append(slices.Clone(w.Spec.InitContainers), w.Spec.Containers...) {
					expectAllowed(t, ct.Name, callCreate(c, rt.request(w, pod, ct)))
					decideCreate(t, q, rt.request(w, pod, ct))
				}
				ct := w.Spec.Containers[0]
				privileged := ct.SecurityContext != nil && ct.SecurityContext.Privileged != nil && *ct.SecurityContext.Privileged
				for _, m := range mutations(t, ti) {
					if m.notPrivileged && privileged {
						continue // not a mutation of a container that asked for it
					}
					req := rt.request(w, pod, ct)
					if m.applies != nil && !m.applies(req) {
						continue
					}
					m.apply(req)
					expectDenied(t, m.name, callCreate(c, req), m.field)
					decideCreate(t, q, req)
				}
				// Every probe and hook command, as the runtime runs it in
				// its container; a shell is refused.
				for _, ct := range append(slices.Clone(w.Spec.InitContainers), w.Spec.Containers...) {
					cc := rt.request(w, pod, ct)
					for _, cmd := range execCommands(ct) {
						if d := decideExec(t, res.Policy, runtimeExec(cc, cmd, false)); !d.Allowed {
							t.Errorf("%s: exec %v denied: %s", ct.Name, cmd, d.Prints)
						}
					}
					if d := decideExec(t, res.Policy, runtimeExec(cc, []string{"/bin/sh"}, false)); d.Allowed || !strings.Contains(d.Prints, "process.Args") {
						t.Errorf("exec of a shell: allowed %v, denial %q does not name process.Args", d.Allowed, d.Prints)
					}
				}
			}
			// The runtime sends the stat mode, type bits included
			// (src/runtime/virtcontainers/kata_agent.go copyFile).
			_, err = c.CopyFile(callCtx(t), &agentpb.CopyFileRequest{Path: rt.sharedPath("c", "hosts"), FileMode: unix.S_IFREG | 0o644, FileSize: 1, Data: []byte("x")})
			expectAllowed(t, "CopyFile of /etc/hosts", err)
			_, err = c.CopyFile(callCtx(t), &agentpb.CopyFileRequest{Path: "/etc/passwd", FileMode: unix.S_IFREG | 0o644, FileSize: 1, Data: []byte("x")})
			expectDenied(t, "CopyFile outside the shared dir", err, "path")
		})
	}
}

// TestNamespacePinned: with --namespace, another namespace is denied.
func TestNamespacePinned(t *testing.T) {
	ti := buildImages(t)
	yaml := corpus(t, ti.reg.Addr)["01-pod-single"]
	c, runDir := startAgent(t)
	res, err := Generate(context.Background(), yaml, Options{Settings: runDirSettings(t, runDir), Namespace: "team-a", Images: ImageOptions{RegistriesConf: ti.conf}})
	if err != nil {
		t.Fatal(err)
	}
	setPolicy(t, c, res.Policy)
	in, err := ParseInput(res.YAML, defaults(t).PassThrough)
	if err != nil {
		t.Fatal(err)
	}
	rt := &miniRuntime{t: t, in: in, images: res.Images, namespace: "team-a", runDir: runDir}
	w := in.Workloads[0]
	expectAllowed(t, "team-a", callCreate(c, rt.request(w, "hello", w.Spec.Containers[0])))
	rt.namespace = "team-b"
	expectDenied(t, "team-b", callCreate(c, rt.request(w, "hello", w.Spec.Containers[0])), "sandbox-namespace")
	expectDenied(t, "team-b pause", callCreate(c, rt.pause(w, "hello")), "sandbox-namespace")
}

type mutation struct {
	name, field string
	apply       func(*agentpb.CreateContainerRequest)
	// notPrivileged: what a privileged container may have anyway.
	notPrivileged bool
	// applies, when set, says whether the request has what the mutation
	// changes.
	applies func(*agentpb.CreateContainerRequest) bool
}

// mutations are what a host could do to a request the pod owner signed
// off; each must be denied with the field named.
func mutations(t testing.TB, ti *testImages) []mutation {
	return append(specMutations(""), []mutation{
		{name: "re-tagged image", field: "storages[image_guest_pull].source", apply: func(r *agentpb.CreateContainerRequest) {
			repo, _, _ := strings.Cut(r.Storages[0].Source, "@")
			other := repo + "@sha256:" + strings.Repeat("ab", 32)
			r.Storages[0].Source, r.OCI.Annotations["io.kubernetes.cri.image-name"] = other, other
		}},
		{name: "image by tag", field: "storages[image_guest_pull].source", apply: func(r *agentpb.CreateContainerRequest) {
			repo, _, _ := strings.Cut(r.Storages[0].Source, "@")
			r.Storages[0].Source = repo + ":v1"
		}},
		{name: "extra env", field: "OCI.Process.Env", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.Env = append(r.OCI.Process.Env, "LD_PRELOAD=/tmp/evil.so")
		}},
		{name: "changed args", field: "OCI.Process.Args", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.Args = append(r.OCI.Process.Args, "--evil")
		}},
		{name: "privileged", field: "OCI.Process.Capabilities", notPrivileged: true, apply: func(r *agentpb.CreateContainerRequest) {
			all := append(slices.Clone(r.OCI.Process.Capabilities.Bounding), "CAP_SYS_ADMIN")
			r.OCI.Process.Capabilities.Bounding, r.OCI.Process.Capabilities.Effective, r.OCI.Process.Capabilities.Permitted = all, all, all
			r.OCI.Linux.MaskedPaths, r.OCI.Linux.ReadonlyPaths = nil, nil
		}},
		{name: "extra hostPath", field: "OCI.Mounts", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Mounts = append(r.OCI.Mounts, &agentpb.Mount{Destination: "/host", Source: "/", Type: "bind", Options: []string{"rbind", "rw"}})
		}},
		// Mount options are pinned as containerd sends them: a host must
		// not drop nosuid/noexec/nodev nor add options.
		{name: "proc without nosuid", field: "OCI.Mounts", apply: func(r *agentpb.CreateContainerRequest) {
			mountNamed(r, "/proc").Options = []string{"noexec", "nodev"}
		}},
		{name: "sysfs with an extra option", field: "OCI.Mounts", apply: func(r *agentpb.CreateContainerRequest) {
			m := mountNamed(r, "/sys")
			m.Options = append(slices.Clone(m.Options), "suid")
		}},
		{name: "hosts file executable", field: "OCI.Mounts", apply: func(r *agentpb.CreateContainerRequest) {
			m := mountNamed(r, "/etc/hosts")
			m.Options = append(slices.Clone(m.Options), "exec")
		}},
		// The host must not choose what a container sees as its hosts
		// file: the source is the runtime's shared copy.
		{name: "hosts file from a guest path", field: "OCI.Mounts", apply: func(r *agentpb.CreateContainerRequest) {
			mountNamed(r, "/etc/hosts").Source = "/etc/shadow"
		}},
		{name: "termination-log shared", field: "OCI.Mounts", apply: func(r *agentpb.CreateContainerRequest) {
			mountNamed(r, "/dev/termination-log").Options = []string{"rbind", "rshared", "rw"}
		}},
		{name: "volume with an extra option", field: "OCI.Mounts", applies: func(r *agentpb.CreateContainerRequest) bool {
			return len(r.OCI.Mounts) > 12
		}, apply: func(r *agentpb.CreateContainerRequest) {
			m := r.OCI.Mounts[12]
			m.Options = append(slices.Clone(m.Options), "dev")
		}},
		{name: "added container", field: "no container named", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Annotations["io.kubernetes.cri.container-name"] = "intruder"
		}},
		// containerd sets sysctls on the sandbox only; a workload
		// container carrying one is the host's doing.
		{name: "extra sysctl", field: "OCI.Linux.Sysctl", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		}},
		// Namespaces: without its own mount namespace the container would
		// share the guest's; a user namespace or a path would put it
		// somewhere the pod spec never asked for.
		{name: "mount namespace dropped", field: "OCI.Linux.Namespaces", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Namespaces = slices.DeleteFunc(r.OCI.Linux.Namespaces, func(ns *agentpb.LinuxNamespace) bool { return ns.Type == "mount" })
		}},
		{name: "user namespace added", field: "OCI.Linux.Namespaces", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Namespaces = append(r.OCI.Linux.Namespaces, &agentpb.LinuxNamespace{Type: "user"})
		}},
		{name: "network namespace added", field: "OCI.Linux.Namespaces", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Namespaces = append(r.OCI.Linux.Namespaces, &agentpb.LinuxNamespace{Type: "network"})
		}},
		{name: "guest mount namespace joined", field: "OCI.Linux.Namespaces", apply: func(r *agentpb.CreateContainerRequest) {
			for _, ns := range r.OCI.Linux.Namespaces {
				if ns.Type == "mount" {
					ns.Path = "/proc/1/ns/mnt"
				}
			}
		}},
		// Devices: none in the pod spec, so none at all.
		{name: "device request", field: "devices", apply: func(r *agentpb.CreateContainerRequest) {
			r.Devices = []*agentpb.Device{{Id: "vdc", Type: "blk", VmPath: "/dev/vdc", ContainerPath: "/dev/xvda"}}
		}},
		{name: "device in the spec", field: "OCI.Linux.Devices", notPrivileged: true, apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Devices = []*agentpb.LinuxDevice{{Path: "/dev/vda", Type: "b", Major: 254, Minor: 0}}
		}},
		{name: "device cgroup opened", field: "OCI.Linux.Resources.Devices", notPrivileged: true, apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Resources.Devices = append(r.OCI.Linux.Resources.Devices, &agentpb.LinuxDeviceCgroup{Allow: true, Type: "b", Major: 254, Minor: -1, Access: "rwm"})
		}},
		{name: "rlimit", field: "OCI.Process.Rlimits", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.Rlimits = []*agentpb.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1 << 20, Soft: 1 << 20}}
		}},
		{name: "never OOM-killed", field: "OCI.Process.OOMScoreAdj", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.OOMScoreAdj = -1000
		}},
		{name: "hostname", field: "OCI.Hostname", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Hostname = "bank.example.com"
		}},
		{name: "pids limit", field: "OCI.Linux.Resources.Pids", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Resources.Pids = &agentpb.LinuxPids{Limit: 1}
		}},
		{name: "block I/O throttled", field: "OCI.Linux.Resources.BlockIO", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Resources.BlockIO = &agentpb.LinuxBlockIO{Weight: 10}
		}},
		// A volume's disk mounted over the image: the host's files would
		// replace the pinned image's.
		{name: "volume disk on the rootfs", field: "storages", apply: func(r *agentpb.CreateContainerRequest) {
			for _, s := range r.Storages[1:] {
				s.MountPoint = r.OCI.Root.Path
			}
		}, applies: func(r *agentpb.CreateContainerRequest) bool { return len(r.Storages) > 1 }},
		{name: "image on another mount point", field: "storages", apply: func(r *agentpb.CreateContainerRequest) {
			r.Storages[0].MountPoint += "-elsewhere"
		}},
	}...)
}

// sandboxMutation changes a CreateSandbox request.
type sandboxMutation struct {
	name, field string
	apply       func(*agentpb.CreateSandboxRequest)
}

// sandboxMutations are what a host could do to CreateSandbox.
func sandboxMutations() []sandboxMutation {
	return []sandboxMutation{
		{"host name", "hostname", func(r *agentpb.CreateSandboxRequest) { r.Hostname = "bank.example.com" }},
		{"sandbox_pidns", "sandbox_pidns", func(r *agentpb.CreateSandboxRequest) { r.SandboxPidns = true }},
		{"guest hook path", "guest_hook_path", func(r *agentpb.CreateSandboxRequest) { r.GuestHookPath = "/usr/share/oci/hooks" }},
		{"kernel module", "kernel_modules", func(r *agentpb.CreateSandboxRequest) {
			r.KernelModules = []*agentpb.KernelModule{{Name: "evil", Parameters: []string{"x=1"}}}
		}},
		{"host directory storage", "storages", func(r *agentpb.CreateSandboxRequest) {
			r.Storages = append(r.Storages, &agentpb.Storage{Driver: "virtio-fs", Source: "kataShared", Fstype: "virtiofs", MountPoint: "/run/kata-containers/shared/containers"})
		}},
		{"executable shm", "storages", func(r *agentpb.CreateSandboxRequest) { r.Storages[0].Options = append(r.Storages[0].Options, "exec") }},
	}
}

// sandbox is the Go runtime's CreateSandbox for pod: its host name (the
// pod's spec.hostname or name), the cluster's DNS, the pod's /dev/shm.
func (rt *miniRuntime) sandbox(w *Workload, pod string) *agentpb.CreateSandboxRequest {
	hostname := pod
	if w.Spec.Hostname != "" {
		hostname = w.Spec.Hostname
	}
	return &agentpb.CreateSandboxRequest{
		Hostname: hostname, SandboxId: containerID(pod, "sandbox"),
		Dns: []string{"nameserver 10.96.0.10", "search default.svc.cluster.local svc.cluster.local cluster.local", "options ndots:5"},
		Storages: []*agentpb.Storage{{Driver: "ephemeral", Source: "shm", Fstype: "tmpfs", MountPoint: rt.runDir + "/sandbox/shm",
			Options: []string{"noexec", "nosuid", "nodev", "mode=1777", "size=67108864"}}},
	}
}

// specMutations are the spec fields a host could set on any container,
// the pause included: each must be denied with the field named.
func specMutations(prefix string) []mutation {
	return []mutation{
		{name: prefix + "OCI hook", field: "OCI.Hooks", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Hooks = &agentpb.Hooks{CreateContainer: []*agentpb.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "cat /proc/1/environ"}}}}
		}},
		{name: prefix + "seccomp allows everything", field: "OCI.Linux.Seccomp", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Seccomp = &agentpb.LinuxSeccomp{DefaultAction: "SCMP_ACT_ALLOW", Architectures: []string{"SCMP_ARCH_X86_64"}}
		}},
		{name: prefix + "shared root propagation", field: "OCI.Linux.RootfsPropagation", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.RootfsPropagation = "rshared"
		}},
		{name: prefix + "uid mappings", field: "OCI.Linux.UIDMappings", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.UIDMappings = []*agentpb.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 1}}
		}},
		{name: prefix + "intel RDT", field: "OCI.Linux.IntelRdt", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.IntelRdt = &agentpb.LinuxIntelRdt{L3CacheSchema: "L3:0=1"}
		}},
		{name: prefix + "SELinux label", field: "OCI.Process.SelinuxLabel", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.SelinuxLabel = "system_u:system_r:spc_t:s0"
		}},
		{name: prefix + "mount label", field: "OCI.Linux.MountLabel", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.MountLabel = "system_u:object_r:container_file_t:s0"
		}},
		{name: prefix + "AppArmor unconfined", field: "OCI.Process.ApparmorProfile", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.ApparmorProfile = "unconfined"
		}},
		{name: prefix + "user name", field: "OCI.Process.User.Username", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.User.Username = "root"
		}},
		// Only where the pod asks for RuntimeDefault.
		{name: prefix + "seccomp dropped", field: "OCI.Linux.Seccomp", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Seccomp = nil
		}, applies: func(r *agentpb.CreateContainerRequest) bool { return r.OCI.Linux.Seccomp != nil }},
	}
}

// pauseMutations are what a host could do to the pause container's
// sysctls: add one, change one, or drop one the pod owner set.
func pauseMutations(w *Workload) []mutation {
	ms := []mutation{
		{name: "pause: extra sysctl", field: "OCI.Linux.Sysctl", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Sysctl["kernel.core_pattern"] = "|/tmp/evil"
		}},
		{name: "pause: changed sysctl", field: "OCI.Linux.Sysctl", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] = "1024"
		}},
	}
	// With a shared PID namespace the pause is PID 1, and /proc/1/root
	// is its root with its mounts: the host must not widen what it sees or
	// may do.
	ms = append(ms,
		mutation{name: "pause: extra bind mount", field: "OCI.Mounts", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Mounts = append(r.OCI.Mounts, &agentpb.Mount{Destination: "/host", Source: "/", Type: "bind", Options: []string{"rbind", "rw"}})
		}},
		mutation{name: "pause: resolv.conf from elsewhere", field: "OCI.Mounts", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Mounts[len(r.OCI.Mounts)-1].Source = "/etc"
		}},
		mutation{name: "pause: resolv.conf without noexec", field: "OCI.Mounts", apply: func(r *agentpb.CreateContainerRequest) {
			mountNamed(r, "/etc/resolv.conf").Options = []string{"rbind", "ro", "nosuid", "nodev"}
		}},
		mutation{name: "pause: devpts with an extra option", field: "OCI.Mounts", apply: func(r *agentpb.CreateContainerRequest) {
			m := mountNamed(r, "/dev/pts")
			m.Options = append(slices.Clone(m.Options), "suid")
		}},
		mutation{name: "pause: added capability", field: "OCI.Process.Capabilities", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.Capabilities.Ambient = []string{"CAP_SYS_PTRACE"}
		}},
		mutation{name: "pause: uid changed", field: "OCI.Process.User", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.User.UID = 0
		}},
		mutation{name: "pause: extra group", field: "OCI.Process.User.AdditionalGids", apply: func(r *agentpb.CreateContainerRequest) {
			// The root group, unless the pause runs with it (runAsUser
			// alone): then another.
			extra := uint32(0)
			if r.OCI.Process.User.GID == 0 {
				extra = 4243
			}
			r.OCI.Process.User.AdditionalGids = append(r.OCI.Process.User.AdditionalGids, extra)
		}},
		mutation{name: "pause: string user", field: "string_user", apply: func(r *agentpb.CreateContainerRequest) {
			r.StringUser = &agentpb.StringUser{Uid: "0"}
		}},
		mutation{name: "pause: extra device", field: "OCI.Linux.Devices", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Devices = []*agentpb.LinuxDevice{{Path: "/dev/vda", Type: "b", Major: 254, Minor: 0}}
		}},
		mutation{name: "pause: device request", field: "devices", apply: func(r *agentpb.CreateContainerRequest) {
			r.Devices = []*agentpb.Device{{Id: "vda", Type: "blk", VmPath: "/dev/vda", ContainerPath: "/dev/vda"}}
		}},
		mutation{name: "pause: device cgroup opened", field: "OCI.Linux.Resources.Devices", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Resources.Devices = append(r.OCI.Linux.Resources.Devices, &agentpb.LinuxDeviceCgroup{Allow: true, Access: "rwm"})
		}},
		mutation{name: "pause: privileged", field: "OCI.Process.Capabilities", apply: func(r *agentpb.CreateContainerRequest) {
			all := append(slices.Clone(r.OCI.Process.Capabilities.Bounding), "CAP_SYS_ADMIN")
			r.OCI.Process.Capabilities.Bounding, r.OCI.Process.Capabilities.Effective, r.OCI.Process.Capabilities.Permitted = all, all, all
			r.OCI.Linux.MaskedPaths, r.OCI.Linux.ReadonlyPaths = nil, nil
		}},
		mutation{name: "pause: masked path dropped", field: "OCI.Linux.MaskedPaths", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.MaskedPaths = slices.DeleteFunc(r.OCI.Linux.MaskedPaths, func(p string) bool { return p == "/proc/kcore" })
		}},
		mutation{name: "pause: IPC namespace dropped", field: "OCI.Linux.Namespaces", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Namespaces = r.OCI.Linux.Namespaces[1:]
		}},
		mutation{name: "pause: user namespace added", field: "OCI.Linux.Namespaces", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Namespaces = append(r.OCI.Linux.Namespaces, &agentpb.LinuxNamespace{Type: "user"})
		}},
		mutation{name: "pause: new privileges", field: "OCI.Process.NoNewPrivileges", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.NoNewPrivileges = false
		}},
		mutation{name: "pause: LD_PRELOAD", field: "OCI.Process.Env", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.Env = append(r.OCI.Process.Env, "LD_PRELOAD=/tmp/evil.so")
		}},
		mutation{name: "pause: writable root", field: "OCI.Root", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Root.Readonly = false
		}},
		mutation{name: "pause: terminal", field: "OCI.Process.Terminal", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.Terminal = true
		}},
		mutation{name: "pause: cwd", field: "OCI.Process.Cwd", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.Cwd = "/proc/1/root"
		}},
		mutation{name: "pause: storage driver", field: "storages", apply: func(r *agentpb.CreateContainerRequest) {
			r.Storages[0].Driver = "local"
		}},
		mutation{name: "pause: guest mount namespace joined", field: "OCI.Linux.Namespaces", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Namespaces[2].Path = "/proc/1/ns/mnt"
		}},
		mutation{name: "pause: rlimit", field: "OCI.Process.Rlimits", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.Rlimits = []*agentpb.POSIXRlimit{{Type: "RLIMIT_NPROC", Hard: 1, Soft: 1}}
		}},
		mutation{name: "pause: never OOM-killed", field: "OCI.Process.OOMScoreAdj", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.OOMScoreAdj = -1000
		}},
		mutation{name: "pause: hostname", field: "OCI.Hostname", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Hostname = "bank.example.com"
		}},
		mutation{name: "pause: pids limit", field: "OCI.Linux.Resources.Pids", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Linux.Resources.Pids = &agentpb.LinuxPids{Limit: 1}
		}},
	)
	ms = append(ms, specMutations("pause: ")...)
	// With runAsUser alone containerd takes the gid from the pause image's
	// /etc/passwd, and the pause image has none: gid 0.
	if psc := w.Spec.SecurityContext; psc != nil && psc.RunAsUser != nil && psc.RunAsGroup == nil {
		ms = append(ms, mutation{name: "pause: gid with runAsUser alone", field: "OCI.Process.User", apply: func(r *agentpb.CreateContainerRequest) {
			r.OCI.Process.User.GID = 4242
		}})
	}
	if psc := w.Spec.SecurityContext; psc != nil && len(psc.Sysctls) > 0 {
		name := dotted(psc.Sysctls[0].Name)
		ms = append(ms, mutation{name: "pause: pod sysctl dropped", field: "OCI.Linux.Sysctl", apply: func(r *agentpb.CreateContainerRequest) {
			delete(r.OCI.Linux.Sysctl, name)
		}})
	}
	return ms
}

// containerdPodSysctls are the sysctls containerd 2.x adds to every pod
// sandbox with a network of its own, unless the pod sets them
// (enable_unprivileged_ports and enable_unprivileged_icmp, on by default:
// internal/cri/config/config_unix.go; set in internal/cri/server/
// podsandbox/sandbox_run_linux.go sandboxContainerSpec). The same as the
// conformance suite's pause container (tools/conformance/spec.go).
var containerdPodSysctls = map[string]string{
	"net.ipv4.ip_unprivileged_port_start": "0",
	"net.ipv4.ping_group_range":           "0 2147483647",
}

// dotted is the kubelet's form of a sysctl name: one written with "/"
// separators has its "/" and "." swapped.
func dotted(name string) string {
	if i := strings.IndexAny(name, "./"); i < 0 || name[i] == '.' {
		return name
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		}
		return r
	}, name)
}

// decideExec is the agent engine's ExecProcess decision for r. It is
// asked directly: the agent answers an exec into a container it does not
// have before the policy (the replay runs no container).
func decideExec(t testing.TB, text string, r *agentpb.ExecProcessRequest) policy.Decision {
	t.Helper()
	p, err := policy.Load(context.Background(), text, "generated")
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.Explain(context.Background(), "ExecProcessRequest", input.Encode(r))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// execCommands are the exec commands of c's probes and lifecycle hooks as
// the kubelet sends them: a probe's expanded with the container's static
// env (k8s.io/kubernetes pkg/kubelet/prober/prober.go runProbe,
// kubecontainer.ExpandContainerCommandOnlyStatic), a hook's as written
// (pkg/kubelet/lifecycle/handlers.go handlerRunner.Run).
func execCommands(c corev1.Container) [][]string {
	var out [][]string
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p != nil && p.Exec != nil {
			out = append(out, kubeletStaticCommand(p.Exec.Command, c.Env))
		}
	}
	if c.Lifecycle != nil {
		for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
			if h != nil && h.Exec != nil {
				out = append(out, h.Exec.Command)
			}
		}
	}
	return out
}

// kubeletStaticCommand is the kubelet's ExpandContainerCommandOnlyStatic
// (pkg/kubelet/container/helpers.go): the map holds every env entry's
// Value, "" for a valueFrom one, the last of a name winning
// (v1EnvVarsToMap), and each word is expanded with it (expansion.Expand
// with MappingFuncFor of that one map, kubeletExpand here).
func kubeletStaticCommand(cmd []string, env []corev1.EnvVar) []string {
	vals := map[string]string{}
	for _, e := range env {
		vals[e.Name] = e.Value
	}
	out := make([]string, 0, len(cmd))
	for _, word := range cmd {
		out = append(out, kubeletExpand(word, vals))
	}
	return out
}

// decideSandbox is the agent engine's CreateSandbox decision for r.
func decideSandbox(t testing.TB, eng *policy.Policy, r *agentpb.CreateSandboxRequest) policy.Decision {
	t.Helper()
	d, err := eng.Explain(context.Background(), "CreateSandboxRequest", input.Encode(r))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func callCreate(c agentpb.AgentServiceService, r *agentpb.CreateContainerRequest) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.CreateContainer(ctx, r)
	return err
}

// expectAllowed: the policy let the request through (the agent may still
// fail it for other reasons: no sandbox, no registry access from here).
func expectAllowed(t testing.TB, what string, err error) {
	t.Helper()
	if status.Code(err) == codes.PermissionDenied || errdefs.IsPermissionDenied(err) {
		t.Errorf("%s: denied by policy: %v", what, err)
	}
}

func expectDenied(t testing.TB, what string, err error, field string) {
	t.Helper()
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("%s: %v, want PERMISSION_DENIED", what, err)
		return
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("%s: denial %q does not name %q", what, err, field)
	}
	if testing.Verbose() {
		t.Logf("%s: %s", what, status.Convert(err).Message())
	}
}

// startAgent runs a real agent; the runtime's paths are under its run
// directory (/run/kata-containers in a guest).
func startAgent(t testing.TB) (agentpb.AgentServiceService, string) {
	cfg := testagent.Config(t)
	c := testagent.Start(t, cfg, daemon.Options{})
	return c.Agent, cfg.KataRunDir
}

// setPolicy installs a policy through SetPolicy, as the runtime would.
func setPolicy(t testing.TB, c agentpb.AgentServiceService, text string) {
	t.Helper()
	if _, err := c.SetPolicy(callCtx(t), &agentpb.SetPolicyRequest{Policy: text}); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
}

// runDirSettings are the default settings with the agent's run directory
// in place of /run/kata-containers: the kind of difference between
// runtimes settings exist for.
func runDirSettings(t testing.TB, runDir string) *Settings {
	t.Helper()
	b := strings.ReplaceAll(string(defaultSettingsJSON), "/run/kata-containers", runDir)
	s, err := ParseSettings([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkGolden compares the generated data, with the registry address, the
// agent's run directory and digests (which change with every image build
// and test) replaced, to the golden file.
func checkGolden(t testing.TB, name string, res *Result, addr, runDir string) {
	t.Helper()
	_, data, ok := strings.Cut(res.Policy, "policy_data := ")
	if !ok {
		t.Fatal("no policy_data in the policy")
	}
	data = strings.ReplaceAll(strings.ReplaceAll(data, addr, "REGISTRY"), runDir, "/run/kata-containers")
	data = regexp.MustCompile(`sha256:[0-9a-f]{64}`).ReplaceAllString(data, "sha256:DIGEST")
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden: %v (run with -update)", err)
	}
	if string(want) != data {
		t.Errorf("policy data differs from %s (run with -update to accept):\n%s", path, data)
	}
}

// miniRuntime builds the CreateContainer requests containerd and the Kata
// runtime send for a pod spec, in the shapes of tools/conformance: written
// here from the runtime's behaviour, not from the generator's data.
type miniRuntime struct {
	t         testing.TB
	in        *Input
	images    map[string]*ImageInfo
	namespace string
	runDir    string
}

func (rt *miniRuntime) podName(w *Workload) string {
	switch w.Kind {
	case "Pod":
		return w.Name
	case "Deployment":
		return w.Name + "-5d8f9c7b4-x2k9p"
	case "StatefulSet":
		return w.Name + "-0"
	case "CronJob":
		return w.Name + "-28999980-q7w2z"
	}
	return w.Name + "-b4n7d"
}

func (rt *miniRuntime) ns() string {
	if rt.namespace == "" {
		return "default"
	}
	return rt.namespace
}

func containerID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(h[:])
}

func (rt *miniRuntime) sharedPath(cid, base string) string {
	if len(cid) != 64 {
		cid = containerID(cid)
	}
	return rt.runDir + "/shared/containers/" + cid + "-0123456789abcdef-" + base
}

var runtimeCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

// containerdMasked and containerdReadonly are containerd's default spec's
// masked and read-only paths (pkg/oci/spec.go populateDefaultUnixSpec),
// which the sandbox spec keeps.
var (
	containerdMasked = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
		"/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi"}
	containerdReadonly = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// pause is the sandbox container's request as containerd 2.x builds it
// (internal/cri/server/podsandbox/sandbox_run_linux.go sandboxContainerSpec
// and sandboxContainerSpecOpts, over pkg/oci/spec.go's default spec):
// default capabilities and masked paths, no rlimits, the pause image's
// environment, command and user (65535) unless the pod sets runAsUser or
// runAsGroup, the pod's supplementalGroups and fsGroup, a read-only root,
// /dev/shm and /etc/resolv.conf bound read-only, the pod's
// securityContext.sysctls over containerd's defaults; then what the Kata
// runtime makes of it (tools/conformance/spec.go): network and PID
// namespaces stripped, /dev/shm on the sandbox's shm storage, resolv.conf
// copied into the shared directory.
func (rt *miniRuntime) pause(w *Workload, pod string) *agentpb.CreateContainerRequest {
	sid := containerID(pod, "sandbox")
	sysctls := map[string]string{}
	user := &agentpb.User{UID: 65535, GID: 65535}
	if psc := w.Spec.SecurityContext; psc != nil {
		for _, s := range psc.Sysctls {
			sysctls[dotted(s.Name)] = s.Value
		}
		if psc.RunAsUser != nil {
			// containerd looks the gid up in the pause image, which has no
			// /etc/passwd.
			user.UID, user.GID = uint32(*psc.RunAsUser), 0
		}
		if psc.RunAsGroup != nil {
			user.GID = uint32(*psc.RunAsGroup)
		}
		if psc.FSGroup != nil {
			user.AdditionalGids = append(user.AdditionalGids, uint32(*psc.FSGroup))
		}
		for _, g := range psc.SupplementalGroups {
			user.AdditionalGids = append(user.AdditionalGids, uint32(g))
		}
	}
	for k, v := range containerdPodSysctls {
		if _, set := sysctls[k]; !set {
			sysctls[k] = v
		}
	}
	caps := slices.Clone(runtimeCaps)
	// The kubelet's hostname for the pod: spec.hostname, else its name.
	hostname := pod
	if w.Spec.Hostname != "" {
		hostname = w.Spec.Hostname
	}
	return &agentpb.CreateContainerRequest{
		ContainerId: sid, ExecId: sid, SandboxPidns: true,
		Storages: []*agentpb.Storage{{Driver: "image_guest_pull", Source: "pause", MountPoint: rt.runDir + "/" + sid + "/rootfs",
			DriverOptions: []string{`image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"sandbox"}}`}}},
		OCI: &agentpb.Spec{
			Version: "1.1.0",
			Process: &agentpb.Process{
				Args: []string{"/pause"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
				Cwd: "/", User: user, NoNewPrivileges: true,
				Capabilities: &agentpb.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
				// containerd's defaultSandboxOOMAdj.
				OOMScoreAdj: -998,
			},
			Root:     &agentpb.Root{Path: rt.runDir + "/" + sid + "/rootfs", Readonly: true},
			Hostname: hostname,
			// containerd's default mounts without /run, /dev/shm on the
			// sandbox's shm storage as the runtime points it, resolv.conf.
			Mounts: []*agentpb.Mount{
				{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
				{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
				{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
				{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
				{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
				// containerd binds the sandbox's shm rbind, ro, nosuid,
				// nodev, noexec; the Go runtime rewrites every /dev/shm to
				// a bind of the guest's sandbox shm with "rbind" alone
				// (src/runtime/virtcontainers/kata_agent.go handleShm,
				// 1150-1178 at Kata 4.1.0), as the agent receives it.
				{Destination: "/dev/shm", Type: "bind", Source: rt.runDir + "/sandbox/shm", Options: []string{"rbind"}},
				{Destination: "/etc/resolv.conf", Type: "bind", Source: rt.sharedPath(sid, "resolv.conf"), Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}},
			},
			Annotations: map[string]string{
				"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-name": pod,
				"io.kubernetes.cri.sandbox-namespace": rt.ns(), "io.kubernetes.cri.sandbox-id": sid,
			},
			Linux: &agentpb.Linux{
				Seccomp: runtimeSeccomp(w, nil),
				Sysctl:  sysctls, CgroupsPath: "/kubepods/pod-" + sid + "/" + sid,
				Namespaces:  []*agentpb.LinuxNamespace{{Type: "ipc"}, {Type: "uts"}, {Type: "mount"}},
				MaskedPaths: slices.Clone(containerdMasked), ReadonlyPaths: slices.Clone(containerdReadonly),
				Resources: &agentpb.LinuxResources{Devices: []*agentpb.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			},
		},
	}
}

func (rt *miniRuntime) request(w *Workload, pod string, c corev1.Container) *agentpb.CreateContainerRequest {
	img := rt.images[c.Image]
	if img == nil {
		for _, i := range rt.images {
			if i.Pinned == c.Image {
				img = i
			}
		}
	}
	if img == nil {
		rt.t.Fatalf("no image for %s", c.Image)
	}
	cid := containerID(pod, c.Name)
	root := rt.runDir + "/" + cid + "/rootfs"
	// Environment: the image's, the pod spec's, then what the kubelet adds.
	env := slices.Clone(img.Config.Env)
	// $(VAR) in args and env values refers to the pod spec's variables
	// only, not the image's (the kubelet expands them, before the image's
	// environment is merged in by containerd).
	literal := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil && rt.in.ConfigMaps[ef.ConfigMapRef.Name] != nil:
			for k, v := range rt.in.ConfigMaps[ef.ConfigMapRef.Name].Data {
				env = append(env, ef.Prefix+k+"="+v)
				literal[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil && rt.in.Secrets[ef.SecretRef.Name] != nil:
			s := rt.in.Secrets[ef.SecretRef.Name]
			for k := range s.Data {
				env = append(env, ef.Prefix+k+"=s3cret")
				literal[ef.Prefix+k] = "s3cret"
			}
			for k := range s.StringData {
				env = append(env, ef.Prefix+k+"=s3cret")
				literal[ef.Prefix+k] = "s3cret"
			}
		}
	}
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom == nil:
			// Expanded with the variables before it
			// (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables).
			v = kubeletExpand(v, literal)
			literal[e.Name] = v
		case e.ValueFrom.ConfigMapKeyRef != nil:
			v = rt.in.ConfigMaps[e.ValueFrom.ConfigMapKeyRef.Name].Data[e.ValueFrom.ConfigMapKeyRef.Key]
			literal[e.Name] = v
		case e.ValueFrom.SecretKeyRef != nil:
			v = "s3cret"
			literal[e.Name] = v
		case e.ValueFrom.FieldRef != nil:
			v = rt.fieldValue(w, pod, e.ValueFrom.FieldRef.FieldPath)
			literal[e.Name] = v
		case e.ValueFrom.ResourceFieldRef != nil:
			v = "134217728"
			literal[e.Name] = v
		}
		env = append(env, e.Name+"="+v)
	}
	env = append(env, "HOSTNAME="+pod, "KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443", "KUBERNETES_PORT=tcp://10.96.0.1:443", "FRONTEND_SERVICE_HOST=10.96.0.12")
	// The kubelet expands the pod spec's command and args
	// (pkg/kubelet/container/helpers.go ExpandContainerCommandAndArgs);
	// containerd takes the image's entrypoint and cmd as they are.
	var expanded []string
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		expanded = append(expanded, kubeletExpand(a, literal))
	}
	var args []string
	switch {
	case len(c.Command) > 0:
		args = expanded
	case len(c.Args) > 0:
		args = append(slices.Clone(img.Config.Entrypoint), expanded...)
	default:
		args = append(slices.Clone(img.Config.Entrypoint), img.Config.Cmd...)
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	psc := w.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	user := &agentpb.User{}
	if img.Config.User == "app" {
		user.UID, user.GID = 1000, 1000
	}
	for _, id := range []*int64{psc.RunAsUser, sc.RunAsUser} {
		if id != nil {
			user.UID = uint32(*id)
		}
	}
	for _, id := range []*int64{psc.RunAsGroup, sc.RunAsGroup} {
		if id != nil {
			user.GID = uint32(*id)
		}
	}
	user.AdditionalGids = []uint32{user.GID}
	if psc.FSGroup != nil {
		user.AdditionalGids = append(user.AdditionalGids, uint32(*psc.FSGroup))
	}
	for _, g := range psc.SupplementalGroups {
		user.AdditionalGids = append(user.AdditionalGids, uint32(g))
	}
	caps := slices.Clone(runtimeCaps)
	masked := []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"}
	ro := []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	// containerd: the defaults, then add, then drop (ALL drops everything
	// not added).
	if sc.Capabilities != nil {
		for _, a := range sc.Capabilities.Add {
			caps = append(caps, "CAP_"+string(a))
		}
		for _, d := range sc.Capabilities.Drop {
			if d == "ALL" {
				caps = nil
				for _, a := range sc.Capabilities.Add {
					caps = append(caps, "CAP_"+string(a))
				}
				break
			}
			caps = slices.DeleteFunc(caps, func(c string) bool { return c == "CAP_"+string(d) })
		}
	}
	if sc.Privileged != nil && *sc.Privileged {
		caps = append(caps, "CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE")
		masked, ro = nil, nil
	}
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = img.Config.WorkingDir
	}
	rootMode := "rw"
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		rootMode = "ro"
	}
	mounts := []*agentpb.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		// containerd's default spec (pkg/oci/mounts.go defaultMounts).
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		// containerd adds the cgroup mount to every container
		// (internal/cri/opts/spec_linux_opts.go WithMounts, lines 71-104),
		// read-only, with no extra option on a host whose /sys/fs/cgroup
		// has neither nsdelegate nor memory_recursiveprot.
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		{Destination: "/dev/shm", Type: "bind", Source: rt.runDir + "/sandbox/shm", Options: []string{"rbind"}},
		{Destination: "/etc/hosts", Type: "bind", Source: rt.sharedPath(cid, "hosts"), Options: []string{"rbind", "rprivate", "rw"}},
		// containerd's own, read-only with a read-only root
		// (internal/cri/server/container_create.go linuxContainerMounts).
		{Destination: "/etc/hostname", Type: "bind", Source: rt.sharedPath(cid, "hostname"), Options: []string{"rbind", "rprivate", rootMode}},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: rt.sharedPath(cid, "resolv.conf"), Options: []string{"rbind", "rprivate", rootMode}},
		{Destination: "/dev/termination-log", Type: "bind", Source: rt.sharedPath(cid, "termination-log"), Options: []string{"rbind", "rprivate", "rw"}},
		{Destination: "/var/run/secrets/kubernetes.io/serviceaccount", Type: "bind", Source: rt.sharedPath(cid, "serviceaccount"), Options: []string{"rbind", "rprivate", "ro"}},
	}
	storages := []*agentpb.Storage{{Driver: "image_guest_pull", Source: img.Pinned, MountPoint: root,
		DriverOptions: []string{`image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"container"}}`}}}
	vols := map[string]corev1.Volume{}
	for _, v := range w.Spec.Volumes {
		vols[v.Name] = v
	}
	for _, vm := range c.VolumeMounts {
		v := vols[vm.Name]
		// containerd's CRI mount options (internal/cri/opts/
		// spec_linux_opts.go WithMounts, lines 154-201): rbind, the
		// kubelet's propagation, ro or rw.
		prop := "rprivate"
		switch {
		case vm.MountPropagation == nil:
		case *vm.MountPropagation == corev1.MountPropagationHostToContainer:
			prop = "rslave"
		case *vm.MountPropagation == corev1.MountPropagationBidirectional:
			prop = "rshared"
		}
		opt := "rw"
		if vm.ReadOnly {
			opt = "ro"
		}
		m := &agentpb.Mount{Destination: vm.MountPath, Type: "bind", Options: []string{"rbind", prop, opt}}
		switch {
		case v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory:
			m.Source = rt.runDir + "/sandbox/ephemeral/" + v.Name
		case v.EmptyDir != nil, v.PersistentVolumeClaim != nil, v.Ephemeral != nil, v.CSI != nil:
			// The Go runtime names a block volume's mount point by its
			// storage source (the disk's PCI path), base64url with "="
			// padding (src/runtime/virtcontainers/kata_agent.go
			// handleBlkOCIMounts, b64.URLEncoding).
			source := fmt.Sprintf("%02x/00", 2+len(storages))
			m.Source = rt.runDir + "/sandbox/storage/" + base64.URLEncoding.EncodeToString([]byte(source))
			storages = append(storages, &agentpb.Storage{Driver: "blk", Source: source, MountPoint: m.Source, Fstype: "ext4"})
		case v.HostPath != nil && (strings.HasPrefix(v.HostPath.Path, "/dev/") || strings.HasPrefix(v.HostPath.Path, "/sys/") || strings.HasPrefix(v.HostPath.Path, "/proc/")):
			// The runtime passes no host device or kernel file system
			// through: the guest's own path is bound.
			m.Source = v.HostPath.Path
		case v.HostPath != nil:
			m.Source = rt.sharedPath(cid, filepath.Base(vm.MountPath))
		default:
			m.Source, m.Options = rt.sharedPath(cid, filepath.Base(vm.MountPath)), []string{"rbind", prop, "ro"}
		}
		mounts = append(mounts, m)
	}
	// The image's VOLUMEs that no volumeMount covers: containerd binds a
	// fresh host directory for each (internal/cri/server/
	// container_create.go volumeMounts), which the Kata runtime shares as
	// <id>-<16 hex>-<base of the destination>
	// (src/runtime/virtcontainers/fs_share_linux.go).
	for _, dst := range slices.Sorted(maps.Keys(img.Config.Volumes)) {
		if slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return filepath.Clean(vm.MountPath) == filepath.Clean(dst) }) {
			continue
		}
		mounts = append(mounts, &agentpb.Mount{Destination: dst, Type: "bind", Source: rt.sharedPath(cid, filepath.Base(dst)), Options: []string{"rbind", "rprivate", "rw"}})
	}
	// The kubelet's resources and OOM score for the container (a
	// Guaranteed pod's -997, a BestEffort one's 1000, a Burstable one's in
	// between by its memory request and the node's memory); the Kata
	// runtime strips the device cgroup, pids and block I/O.
	res := &agentpb.LinuxResources{CPU: &agentpb.LinuxCPU{Shares: 2, Period: 100000}}
	oom := int64(1000)
	if mem := c.Resources.Limits.Memory(); !mem.IsZero() {
		res.Memory = &agentpb.LinuxMemory{Limit: mem.Value()}
	}
	if cpu := c.Resources.Limits.Cpu(); !cpu.IsZero() {
		res.CPU.Quota = cpu.MilliValue() * 100
	}
	if len(c.Resources.Requests) > 0 || len(c.Resources.Limits) > 0 {
		oom = 937
		if c.Resources.Requests.Memory().Equal(*c.Resources.Limits.Memory()) && c.Resources.Requests.Cpu().Equal(*c.Resources.Limits.Cpu()) {
			oom = -997
		}
	}
	return &agentpb.CreateContainerRequest{
		ContainerId: cid, ExecId: cid, Storages: storages,
		SandboxPidns: w.Spec.ShareProcessNamespace != nil && *w.Spec.ShareProcessNamespace,
		OCI: &agentpb.Spec{
			Version: "1.1.0",
			Process: &agentpb.Process{
				Args: args, Env: env, Cwd: cwd, User: user, Terminal: c.TTY,
				// containerd's default profile on an AppArmor host.
				ApparmorProfile: "cri-containerd.apparmor.d",
				Capabilities:    &agentpb.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
				NoNewPrivileges: sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
				OOMScoreAdj:     oom,
			},
			Root:   &agentpb.Root{Path: root, Readonly: sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
			Mounts: mounts,
			Annotations: map[string]string{
				"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.container-name": c.Name,
				"io.kubernetes.cri.sandbox-name": pod, "io.kubernetes.cri.sandbox-namespace": rt.ns(),
				"io.kubernetes.cri.sandbox-id": containerID(pod, "sandbox"), "io.kubernetes.cri.image-name": img.Pinned,
			},
			Linux: &agentpb.Linux{
				Seccomp:     runtimeSeccomp(w, c.SecurityContext),
				CgroupsPath: "/kubepods/" + cid, MaskedPaths: masked, ReadonlyPaths: ro, Resources: res,
				// containerd's pid, ipc, uts, mount, network and cgroup
				// namespaces, less what the runtime strips (network,
				// cgroup; pid is sent as sandbox_pidns).
				Namespaces: []*agentpb.LinuxNamespace{{Type: "ipc"}, {Type: "uts"}, {Type: "mount"}},
			},
		},
	}
}

var _ = json.Marshal

// runtimeSeccomp is the profile containerd gives a container whose pod (or
// itself) asks for RuntimeDefault, in the shape of its default profile: a
// refusing default action and a list of allowed syscalls (cut short here);
// nil for Unconfined or nothing asked, as without the kubelet's
// --seccomp-default.
func runtimeSeccomp(w *Workload, sc *corev1.SecurityContext) *agentpb.LinuxSeccomp {
	var p *corev1.SeccompProfile
	if w.Spec.SecurityContext != nil {
		p = w.Spec.SecurityContext.SeccompProfile
	}
	if sc != nil && sc.SeccompProfile != nil {
		p = sc.SeccompProfile
	}
	if p == nil || p.Type != corev1.SeccompProfileTypeRuntimeDefault {
		return nil
	}
	return &agentpb.LinuxSeccomp{
		DefaultAction: "SCMP_ACT_ERRNO", Architectures: []string{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"},
		Syscalls: []*agentpb.LinuxSyscall{{Names: []string{"accept", "read", "write", "exit_group"}, Action: "SCMP_ACT_ALLOW"}},
	}
}

// mountNamed is the request's mount at dst (the mini runtime sends the
// fixed ones to every container).
func mountNamed(r *agentpb.CreateContainerRequest, dst string) *agentpb.Mount {
	for _, m := range r.OCI.Mounts {
		if m.Destination == dst {
			return m
		}
	}
	panic("mini runtime: no mount at " + dst)
}

// kubeletExpand is the kubelet's $(VAR) expansion
// (third_party/forked/golang/expansion/expand.go Expand and
// tryReadVariableName): "$$" is a literal "$", $(NAME) a defined
// variable's value, an undefined one stays as written, and a "$(" with no
// ")" after it stays while the scan goes on after the "(".
func kubeletExpand(s string, vars map[string]string) string {
	var out strings.Builder
	for s != "" {
		i := strings.IndexByte(s, '$')
		if i < 0 || i == len(s)-1 {
			out.WriteString(s)
			break
		}
		out.WriteString(s[:i])
		rest := s[i+1:]
		switch {
		case rest[0] == '$':
			out.WriteByte('$')
			s = rest[1:]
		case rest[0] == '(' && strings.IndexByte(rest, ')') > 0:
			end := strings.IndexByte(rest, ')')
			if v, ok := vars[rest[1:end]]; ok {
				out.WriteString(v)
			} else {
				out.WriteString(s[i : i+end+2])
			}
			s = rest[end+1:]
		case rest[0] == '(':
			out.WriteString("$(")
			s = rest[1:]
		default:
			out.WriteByte('$')
			s = rest
		}
	}
	return out.String()
}
