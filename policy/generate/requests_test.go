package generate

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

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
