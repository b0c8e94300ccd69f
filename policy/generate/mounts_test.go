package generate

import (
	"slices"
	"strings"
	"testing"
)

// propagationPod has a hostPath volume with HostToContainer propagation,
// which containerd binds rslave (internal/cri/opts/spec_linux_opts.go
// WithMounts, lines 165-172).
const propagationPod = `apiVersion: v1
kind: Pod
metadata: {name: prop}
spec:
  containers:
  - name: app
    image: app-image
    volumeMounts:
    - {name: host, mountPath: /host-logs, mountPropagation: HostToContainer}
  volumes:
  - {name: host, hostPath: {path: /var/log}}
`

// TestMountOptionsPinned: mount options are compared as the list
// containerd sends. Its cgroup mount carries nsdelegate and
// memory_recursiveprot when the host's /sys/fs/cgroup has them
// (WithMounts, lines 76-97), as genpolicy allows
// (cgroup_mount_extras_allowed, genpolicy-settings.json:348-351 and
// rules.rego:1173-1198 at Kata 4.1.0); any other option, or one of the
// pinned ones missing, is denied naming OCI.Mounts.
func TestMountOptionsPinned(t *testing.T) {
	text, rt := fakeRuntime(t, propagationPod)
	w := rt.in.Workloads[0]
	q := prepareCreate(t, text)
	base := []string{"nosuid", "noexec", "nodev", "relatime", "ro"}
	for _, extra := range [][]string{nil, {"nsdelegate"}, {"memory_recursiveprot"}, {"nsdelegate", "memory_recursiveprot"}} {
		req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
		mountNamed(req, "/sys/fs/cgroup").Options = append(slices.Clone(base), extra...)
		if allowed, problems := decideCreate(t, q, req); !allowed {
			t.Errorf("cgroup options with %v denied: %v", extra, problems)
		}
	}
	if got := mountNamed(rt.request(w, rt.podName(w), w.Spec.Containers[0]), "/host-logs").Options; !slices.Equal(got, []string{"rbind", "rslave", "rw"}) {
		t.Fatalf("fixture: the hostPath's options are %v", got)
	}
	bad := map[string]func([]string) []string{
		"/sys/fs/cgroup": func(o []string) []string { return append(o, "memory_hugetlb") },
		"/host-logs":     func([]string) []string { return []string{"rbind", "rshared", "rw"} },
		"/dev":           func(o []string) []string { return slices.DeleteFunc(o, func(x string) bool { return x == "nosuid" }) },
		"/dev/mqueue":    func([]string) []string { return []string{"nosuid", "noexec"} },
		"/etc/hostname":  func(o []string) []string { return append(o, "suid") },
	}
	for dst, mutate := range bad {
		req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
		m := mountNamed(req, dst)
		m.Options = mutate(slices.Clone(m.Options))
		allowed, problems := decideCreate(t, q, req)
		if allowed || len(problems) != 1 || !strings.Contains(problems[0], "OCI.Mounts: "+dst) {
			t.Errorf("%s with options %v: allowed %v, problems %q do not name OCI.Mounts", dst, m.Options, allowed, problems)
		}
	}
}
