package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// newPodAt is newPod with the state directory at a path of the caller's
// choosing (the real agent's sits next to the run dir; a configuration may
// put it below) and a "local" storage driver that makes its mount point, as
// Kata's local volumes under the sandbox container's rootfs.
func newPodAt(t *testing.T, state func(dir, run string) string) *pod {
	t.Helper()
	testenv.RequiresRoot(t)
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	p := &pod{run: run, state: state(dir, run), cgroup: testenv.CgroupParent(t)}
	stor := storage.NewManager()
	local := storage.DriverFunc(func(_ context.Context, r storage.Request) (storage.Mounted, error) {
		return storage.Mounted{Path: r.Storage.MountPoint}, os.MkdirAll(r.Storage.MountPoint, 0o777)
	})
	if err := stor.Register("local", local); err != nil {
		t.Fatal(err)
	}
	sb, err := sandbox.New(sandbox.Options{KataRunDir: p.run, StateDir: p.state, CgroupParent: p.cgroup, Storage: stor})
	if err != nil {
		t.Fatal(err)
	}
	p.Sandbox = sb
	t.Cleanup(func() {
		if err := sb.Destroy(context.Background()); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	return p
}

func stateBeside(dir, _ string) string { return filepath.Join(dir, "state") }

func writeFile(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func symlink(t *testing.T, target, link string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}

func withBind(s *specs.Spec, src string) *specs.Spec {
	dest := fmt.Sprintf("/mnt/m%d", len(s.Mounts))
	s.Mounts = append(s.Mounts, specs.Mount{Destination: dest, Source: src, Type: "bind", Options: []string{"rbind", "ro"}})
	return s
}

// refused checks a CreateContainer was refused with PERMISSION_DENIED and
// left no container behind.
func (p *pod) refused(t *testing.T, r sandbox.ContainerRequest, before ...string) {
	t.Helper()
	_, err := p.CreateContainer(context.Background(), r)
	if !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Fatalf("CreateContainer(%s) = %v, want permission denied", r.ID, err)
	}
	t.Logf("refused: %v", err)
	got := p.Containers()
	slices.Sort(got)
	if !slices.Equal(got, before) {
		t.Fatalf("containers after refusal %v, want %v", got, before)
	}
}

// The agent's state directory holds what the KBS released (registry
// credentials, decrypted layers, the decision log): a bind mount must never
// reach it, however the path is spelled.
func TestBindSourceInStateDirRefused(t *testing.T) {
	t.Run("beside the run dir", func(t *testing.T) {
		p := newPodAt(t, stateBeside)
		secret := writeFile(t, filepath.Join(p.state, "image", "conf", "auth.json"), "registry-password")
		p.refused(t, sandbox.ContainerRequest{ID: "c1", Spec: withBind(specFor(p.rootfs(t, "c1"), "true"), secret)})
	})
	t.Run("through a symlink in the shared dir", func(t *testing.T) {
		p := newPodAt(t, stateBeside)
		secret := writeFile(t, filepath.Join(p.state, "image", "conf", "auth.json"), "registry-password")
		link := symlink(t, secret, filepath.Join(p.run, "shared", "containers", "c1-0123456789abcdef-auth"))
		p.refused(t, sandbox.ContainerRequest{ID: "c1", Spec: withBind(specFor(p.rootfs(t, "c1"), "true"), link)})
	})
	t.Run("overlay with a lower dir in the layer store", func(t *testing.T) {
		p := newPodAt(t, stateBeside)
		layer := filepath.Dir(writeFile(t, filepath.Join(p.state, "image", "layers", "x", "secret"), "decrypted"))
		s := specFor(p.rootfs(t, "c1"), "true")
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt/layer", Source: "overlay", Type: "overlay", Options: []string{"lowerdir=" + layer}})
		p.refused(t, sandbox.ContainerRequest{ID: "c1", Spec: s})
	})
	t.Run("state dir below the run dir", func(t *testing.T) {
		p := newPodAt(t, func(_, run string) string { return filepath.Join(run, "cocoon") })
		secret := writeFile(t, filepath.Join(p.state, "image", "conf", "auth.json"), "registry-password")
		p.refused(t, sandbox.ContainerRequest{ID: "c1", Spec: withBind(specFor(p.rootfs(t, "c1"), "true"), secret)})
	})
}

func TestRootInStateDirRefused(t *testing.T) {
	p := newPodAt(t, stateBeside)
	root := filepath.Join(p.state, "rootfs")
	testenv.BusyboxRootfs(t, root)
	p.refused(t, sandbox.ContainerRequest{ID: "c1", Spec: specFor(root, "true")})
}

// A container never sees another container's root file system: with guest
// pull it is the decrypted image.
func TestAnotherContainersRootfsRefused(t *testing.T) {
	p := newPodAt(t, stateBeside)
	ctx := context.Background()
	r1 := p.rootfs(t, "c1")
	if _, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: specFor(r1, "true")}); err != nil {
		t.Fatal(err)
	}
	pulled := filepath.Join(p.run, "c1", "rootfs")
	testenv.BusyboxRootfs(t, pulled)
	r2 := p.rootfs(t, "c2")
	cases := map[string]*specs.Spec{
		"root is c1's":                       specFor(r1, "true"),
		"root is c1's guest-pull root":       specFor(pulled, "true"),
		"root links to c1's":                 specFor(symlink(t, r1, filepath.Join(p.run, "c2", "rootfs")), "true"),
		"bind of c1's rootfs":                withBind(specFor(r2, "true"), filepath.Join(r1, "etc")),
		"bind of c1's guest-pull dir":        withBind(specFor(r2, "true"), filepath.Join(p.run, "c1")),
		"bind of c1's rootfs through a link": withBind(specFor(r2, "true"), symlink(t, filepath.Join(r1, "etc"), filepath.Join(p.run, "shared", "containers", "c2-0123456789abcdef-etc"))),
		"bind of a dot-dot path":             withBind(specFor(r2, "true"), p.run+"/shared/containers/c2/../c1/rootfs"),
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c2", Spec: s})
			if err == nil {
				if err := p.Remove(ctx, "c2"); err != nil {
					t.Error(err)
				}
			}
			t.Logf("refused: %v", err)
			if !errors.Is(err, errdefs.ErrPermissionDenied) && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("CreateContainer = %v, want permission denied or invalid argument", err)
			}
			if got := p.Containers(); len(got) != 1 {
				t.Fatalf("containers %v", got)
			}
		})
	}
}

// A path held before a container exists is refused to the container that
// later owns it: a slave bind would otherwise receive its image's mount.
func TestRootHeldByAnotherContainerRefused(t *testing.T) {
	p := newPodAt(t, stateBeside)
	ctx := context.Background()
	future := filepath.Join(p.run, "shared", "containers", "c2", "rootfs")
	testenv.BusyboxRootfs(t, future)
	if _, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: withBind(specFor(p.rootfs(t, "c1"), "true"), filepath.Join(future, "etc"))}); err != nil {
		t.Fatal(err)
	}
	p.refused(t, sandbox.ContainerRequest{ID: "c2", Spec: specFor(future, "true")}, "c1")
}

// What the Kata runtime sends still works: shared files named after the
// container, sandbox storages, the guest-pull root and local volumes under
// the sandbox container's rootfs that come as storages of the request.
func TestKataMountSourcesAccepted(t *testing.T) {
	p := newPodAt(t, stateBeside)
	ctx := context.Background()
	if err := p.Create(ctx, sandbox.Config{ID: "pod"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "pod", Spec: specFor(p.rootfs(t, "pod"), "true")}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(p.run, "c1", "rootfs")
	testenv.BusyboxRootfs(t, root)
	hosts := writeFile(t, filepath.Join(p.run, "shared", "containers", "c1-0123456789abcdef-hosts"), "127.0.0.1 localhost\n")
	shm := filepath.Join(p.run, "sandbox", "shm")
	if err := os.MkdirAll(shm, 0o1777); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(p.run, "shared", "containers", "pod", "rootfs", "local", "cache")
	s := withBind(withBind(withBind(specFor(root, "true"), hosts), shm), local)
	st := []*storage.Storage{{Driver: "local", Source: "local", Fstype: "local", MountPoint: local}}
	if _, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: s, Storages: st}); err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
}
