package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/stream"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// swapCase is a path of a container's spec under a virtio-fs share and
// the component of it a hostile host replaces with a symlink once the
// agent has checked it.
type swapCase struct {
	name string
	// rel is the path below shared/containers, swap the component (a
	// prefix of rel) that becomes a symlink, inner what is below it.
	rel, swap, inner string
	file             bool
	// root: rel is the container's root, holding "marker"; otherwise rel
	// is a bind source mounted at /mnt/src.
	root bool
}

var swapCases = []swapCase{
	{name: "bind source, last component", rel: "c1-0123456789abcdef-vol", swap: "c1-0123456789abcdef-vol", inner: "f"},
	{name: "bind source, parent component", rel: "c1-0123456789abcdef-vol/sub", swap: "c1-0123456789abcdef-vol", inner: "sub/f"},
	{name: "bind source, a file", rel: "c1-0123456789abcdef-token", swap: "c1-0123456789abcdef-token", file: true},
	{name: "root, parent component", rel: "c1/rootfs", swap: "c1", inner: "rootfs/marker", root: true},
}

// layout makes the checked path (holding "checked") and, in the agent's
// private state directory, the tree the symlink will lead to (holding
// "secret"). It returns the container's spec, which prints what it finds,
// and the swap, which moves the checked component aside and puts the
// symlink in its place.
func (c swapCase) layout(t *testing.T, p *pod) (*specs.Spec, func()) {
	t.Helper()
	shared := filepath.Join(p.run, "shared", "containers")
	secret := filepath.Join(p.state, "private-"+strings.NewReplacer(" ", "-", ",", "").Replace(c.name))
	var s *specs.Spec
	switch {
	case c.root:
		testenv.BusyboxRootfs(t, filepath.Join(shared, c.rel))
		testenv.BusyboxRootfs(t, filepath.Join(secret, c.rel[len(c.swap)+1:]))
		writeFile(t, filepath.Join(shared, c.swap, c.inner), "checked")
		writeFile(t, filepath.Join(secret, c.inner), "secret")
		s = specFor(filepath.Join(shared, c.rel), "cat", "/marker")
	case c.file:
		writeFile(t, filepath.Join(shared, c.rel), "checked")
		writeFile(t, secret, "secret")
		s = bindAt(specFor(p.rootfs(t, "c1"), "cat", "/mnt/src"), filepath.Join(shared, c.rel), "/mnt/src", "ro")
	default:
		writeFile(t, filepath.Join(shared, c.swap, c.inner), "checked")
		writeFile(t, filepath.Join(secret, c.inner), "secret")
		s = bindAt(specFor(p.rootfs(t, "c1"), "cat", "/mnt/src/f"), filepath.Join(shared, c.rel), "/mnt/src", "ro")
	}
	swapped := filepath.Join(shared, c.swap)
	return s, func() {
		if err := os.Rename(swapped, swapped+".aside"); err != nil {
			t.Error(err)
			return
		}
		if err := os.Symlink(secret, swapped); err != nil {
			t.Error(err)
		}
	}
}

// runOutput starts a created container and returns its stdout; the test
// has failed already when the container was created at all, this only
// says what it could read.
func runOutput(t *testing.T, p *pod, id string) string {
	t.Helper()
	ctx := context.Background()
	c, err := p.Container(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	out := readAll(t, c.Init().IO, stream.Stdout)
	if _, err := c.Init().Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	return out
}

// A host controlling a shared directory can swap a component of a root or
// bind source for a symlink after the agent checked the path. Once
// checked, the path is opened beneath the run dir without following
// symlinks and bound from that descriptor, so a swap made before then
// refuses the container instead of handing it what the symlink leads to.
func TestBindSourceSwappedAfterCheckRefused(t *testing.T) {
	for _, c := range swapCases {
		t.Run(c.name, func(t *testing.T) {
			p := newPod(t)
			s, swap := c.layout(t, p)
			swapped := false
			sandbox.SetHooks(p.Sandbox, func() { swap(); swapped = true }, nil)
			_, err := p.CreateContainer(context.Background(), sandbox.ContainerRequest{ID: "c1", Spec: s})
			if !swapped {
				t.Fatalf("the swap never ran: %v", err)
			}
			if err == nil {
				t.Fatalf("CreateContainer followed the swapped path; the container read %q", runOutput(t, p, "c1"))
			}
			if !errors.Is(err, errdefs.ErrPermissionDenied) {
				t.Fatalf("CreateContainer = %v, want permission denied", err)
			}
			t.Logf("refused: %v", err)
			if got := p.Containers(); len(got) != 0 {
				t.Fatalf("containers after refusal: %v", got)
			}
			noStagingLeft(t, p)
		})
	}
}

// What libcontainer binds is the agent's staging mount of the checked
// source, which the host cannot change: a swap after staging changes
// nothing the container sees. Removing the container takes the staging
// mounts away and leaves the host's files alone.
func TestBindSourceSwappedAfterStagingIgnored(t *testing.T) {
	for _, c := range swapCases {
		t.Run(c.name, func(t *testing.T) {
			p := newPod(t)
			s, swap := c.layout(t, p)
			swapped := false
			sandbox.SetHooks(p.Sandbox, nil, func() { swap(); swapped = true })
			if _, err := p.CreateContainer(context.Background(), sandbox.ContainerRequest{ID: "c1", Spec: s}); err != nil {
				t.Fatal(err)
			}
			if !swapped {
				t.Fatal("the swap never ran")
			}
			if got := runOutput(t, p, "c1"); got != "checked" {
				t.Fatalf("container read %q, want the checked source's %q", got, "checked")
			}
			noStagingLeft(t, p)
			aside := filepath.Join(p.run, "shared", "containers", c.swap+".aside", c.inner)
			if b, err := os.ReadFile(aside); err != nil || string(b) != "checked" {
				t.Fatalf("the checked source after removal: %q, %v", b, err)
			}
		})
	}
}

// noStagingLeft checks that nothing is mounted below the state directory
// any more and that the staging directory of c1 is gone.
func noStagingLeft(t *testing.T, p *pod) {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], p.state+"/") {
			t.Errorf("still mounted: %s", f[4])
		}
	}
	if _, err := os.Stat(filepath.Join(p.state, "binds", "c1")); !os.IsNotExist(err) {
		t.Errorf("staging directory left: %v", err)
	}
}

// A container libcontainer fails to create leaves no staging mount behind.
func TestStagingReleasedWhenCreateFails(t *testing.T) {
	p := newPod(t)
	src := writeFile(t, filepath.Join(p.run, "shared", "containers", "c1-0123456789abcdef-vol", "f"), "checked")
	s := bindAt(specFor(p.rootfs(t, "c1"), "true"), filepath.Dir(src), "/mnt/src", "ro")
	// The kernel refuses this tmpfs in the container's init, after the
	// sources were staged.
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/bad", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=not-a-size"}})
	staged := false
	sandbox.SetHooks(p.Sandbox, nil, func() {
		_, err := os.Stat(filepath.Join(p.state, "binds", "c1"))
		staged = err == nil
	})
	if _, err := p.CreateContainer(context.Background(), sandbox.ContainerRequest{ID: "c1", Spec: s}); err == nil {
		t.Fatal("CreateContainer with a bad tmpfs succeeded")
	}
	if !staged {
		t.Fatal("nothing was staged before the container was created")
	}
	noStagingLeft(t, p)
	if b, err := os.ReadFile(src); err != nil || string(b) != "checked" {
		t.Fatalf("the source after the failure: %q, %v", b, err)
	}
}

// Staging needs a place the host cannot change: a state directory in the
// shared part of the run dir refuses containers rather than stage there.
func TestStagingRefusedInSharedStateDir(t *testing.T) {
	p := newPodAt(t, func(_, run string) string { return filepath.Join(run, "shared", "cocoon") })
	_, err := p.CreateContainer(context.Background(), sandbox.ContainerRequest{ID: "c1", Spec: specFor(p.rootfs(t, "c1"), "true")})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("CreateContainer = %v, want failed precondition", err)
	}
	t.Logf("refused: %v", err)
	noStagingLeft(t, p)
}
