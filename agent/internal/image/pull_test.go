package image

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

func TestPullMountRunBusybox(t *testing.T) {
	f := newFixture(t)
	src := f.build("bb",
		testregistry.Files(map[string]string{"data/a": "a", "data/b": "b", "etc/motd": "hello"}),
		testregistry.Remove("data/a"),
	)
	ref := f.reg.Push(t, src, "busybox:1", nil)
	p := f.puller()
	run := filepath.Join(f.dir, "run")
	d := NewDriver(p, run, "")
	mp := filepath.Join(run, "c1", "rootfs")
	m, err := d.Mount(context.Background(), storage.Request{Owner: "c1", Storage: &storage.Storage{
		Driver: DriverName, Source: ref, MountPoint: mp,
		DriverOptions: []string{`image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"container"}}`},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Path != mp || m.Image == nil || len(m.Image.Cmd) != 1 || m.Image.Cmd[0] != "/bin/sh" {
		t.Fatalf("mounted %+v", m)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "etc/motd")); err != nil || string(b) != "hello" {
		t.Errorf("motd: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(mp, "data/a")); !os.IsNotExist(err) {
		t.Errorf("whiteout not applied: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mp, "data/b")); err != nil {
		t.Errorf("data/b: %v", err)
	}
	// The rootfs is real: busybox runs from it.
	cmd := exec.Command("/bin/busybox", "sh", "-c", "echo ok > /written && cat /etc/motd")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: mp}
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "hello" {
		t.Fatalf("run in rootfs: %q %v", out, err)
	}
	layers, _ := f.storedLayers()
	if len(layers) != 3 {
		t.Errorf("store holds %d layers, want 3", len(layers))
	}
	if err := m.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mp, "etc/motd")); !os.IsNotExist(err) {
		t.Errorf("still mounted after cleanup: %v", err)
	}
	if layers, tmp := f.storedLayers(); len(layers)+len(tmp) != 0 {
		t.Errorf("layers not collected: %v %v", layers, tmp)
	}
}

func TestMountRefusesBadStorage(t *testing.T) {
	f := newFixture(t)
	d := NewDriver(f.puller(), filepath.Join(f.dir, "run"), "")
	opt := []string{`image_guest_pull={"metadata":{}}`}
	cases := map[string]struct {
		s    *storage.Storage
		want func(error) bool
	}{
		"outside run dir": {&storage.Storage{Source: "x", MountPoint: "/etc/rootfs", DriverOptions: opt}, errdefs.IsPermissionDenied},
		"relative":        {&storage.Storage{Source: "x", MountPoint: "rootfs", DriverOptions: opt}, errdefs.IsInvalidArgument},
		"dotdot":          {&storage.Storage{Source: "x", MountPoint: f.dir + "/run/../x", DriverOptions: opt}, errdefs.IsInvalidArgument},
		"no options":      {&storage.Storage{Source: "x", MountPoint: filepath.Join(f.dir, "run", "c", "rootfs")}, errdefs.IsInvalidArgument},
		"bad json":        {&storage.Storage{Source: "x", MountPoint: filepath.Join(f.dir, "run", "c", "rootfs"), DriverOptions: []string{"image_guest_pull={"}}, errdefs.IsInvalidArgument},
		"bad ref":         {&storage.Storage{Source: "UPPER/Case!", MountPoint: filepath.Join(f.dir, "run", "c", "rootfs"), DriverOptions: opt}, errdefs.IsInvalidArgument},
		"no source":       {&storage.Storage{MountPoint: filepath.Join(f.dir, "run", "c", "rootfs"), DriverOptions: opt}, errdefs.IsInvalidArgument},
		"missing image":   {&storage.Storage{Source: f.reg.Addr + "/nothing:here", MountPoint: filepath.Join(f.dir, "run", "c", "rootfs"), DriverOptions: opt}, errdefs.IsNotFound},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := d.Mount(context.Background(), storage.Request{Owner: "c", Storage: c.s})
			if err == nil || !c.want(err) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestPauseBundle(t *testing.T) {
	f := newFixture(t)
	bundle := filepath.Join(f.dir, "pause_bundle")
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "rootfs", "pause"), []byte("p"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.0.2","process":{"args":["/pause"],"cwd":"/","env":["PATH=/"],"user":{"uid":65535,"gid":65535}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(f.dir, "run")
	d := NewDriver(f.puller(), run, bundle)
	mp := filepath.Join(run, "sb", "rootfs")
	m, err := d.Mount(context.Background(), storage.Request{Owner: "sb", Storage: &storage.Storage{
		Driver: DriverName, Source: "pause", MountPoint: mp,
		DriverOptions: []string{`image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"sandbox"}}`},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Cleanup(context.Background())
	if m.Image.Cmd[0] != "/pause" || m.Image.User != "65535:65535" {
		t.Errorf("pause config %+v", m.Image)
	}
	if _, err := os.Stat(filepath.Join(mp, "pause")); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "scratch"), nil, 0o644); err != nil {
		t.Errorf("rootfs not writable: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bundle, "rootfs", "scratch")); !errors.Is(err, os.ErrNotExist) {
		t.Error("write reached the shared pause bundle")
	}
}
