package sandbox_test

import (
	"context"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// A guest-pulled workload runs with the spec the runtime sent: containerd
// merged the image's config into it already (Kata applies the image's
// process only to the sandbox: src/agent/src/confidential_data_hub/image.rs
// get_process). The pod here sets runAsUser: 0 against an image whose USER
// is 1000; the policy approved uid 0, so uid 0 it must be.
func TestImageConfigOnlyForTheSandbox(t *testing.T) {
	img := &ocispec.ImageConfig{User: "1000:1000", WorkingDir: "/tmp", Env: []string{"FROM_IMAGE=1"}, Cmd: []string{"sh", "-c", "echo image-cmd"}}
	stor := storage.NewManager()
	// The image_guest_pull driver's result, without a registry: the image's
	// rootfs at the mount point and its config.
	pull := storage.DriverFunc(func(_ context.Context, r storage.Request) (storage.Mounted, error) {
		testenv.BusyboxRootfs(t, r.Storage.MountPoint)
		return storage.Mounted{Path: r.Storage.MountPoint, Image: img}, nil
	})
	if err := stor.Register("image_guest_pull", pull); err != nil {
		t.Fatal(err)
	}
	p := newPodOpts(t, func(o *sandbox.Options) { o.Storage = stor })
	req := func(cid, ctype string, args ...string) sandbox.ContainerRequest {
		mp := filepath.Join(p.run, cid, "rootfs")
		s := specFor(mp, args...)
		if ctype != "" {
			s.Annotations = map[string]string{"io.kubernetes.cri.container-type": ctype}
		}
		s.Process.User = specs.User{UID: 0, GID: 0}
		return sandbox.ContainerRequest{ID: cid, Spec: s, Storages: []*storage.Storage{{Driver: "image_guest_pull", Source: "example.com/app:1", MountPoint: mp}}}
	}
	show := `id -u; pwd; echo ${FROM_IMAGE:-unset}`
	if got := p.output(t, req("app", "container", "sh", "-c", show)); got != "0\n/\nunset\n" {
		t.Errorf("workload ran as %q, want uid 0 in / without the image's env (the spec as sent)", got)
	}
	if got := p.output(t, req("app2", "", "sh", "-c", show)); got != "0\n/\nunset\n" {
		t.Errorf("spec without a container type ran as %q, want the spec as sent", got)
	}
	if got := p.output(t, req("pause", "sandbox", "sh", "-c", show)); got != "1000\n/tmp\n1\n" {
		t.Errorf("sandbox ran as %q, want the image's user, working dir and env", got)
	}
	if got := p.output(t, req("bare", "container")); got != "image-cmd\n" {
		t.Errorf("spec without a command ran %q, want the image's", got)
	}
}
