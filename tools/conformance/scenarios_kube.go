package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// kubeletTimestamp is the name kubelet's atomic writer gives a ConfigMap or
// Secret volume's current payload; "..data" and one link per key point
// into it.
const kubeletTimestamp = "..2026_11_30_01_02_03.000000001"

// apparmorProfile is the profile containerd names in every spec on an
// AppArmor host (containerd internal/cri/server/container_create_linux.go,
// "cri-containerd.apparmor.d"); the Go runtime forwards it, runtime-rs
// forwards it on CreateContainer and drops it on ExecProcess
// (virt_container/src/container_manager/manager.rs exec_process ~l.213).
const apparmorProfile = "cri-containerd.apparmor.d"

// hostDir is a directory on this machine standing in for the host's files
// (kubelet's pod directory) that the runtime copies into the guest.
func (h *Harness) hostDir() (string, error) {
	return os.MkdirTemp("", "conformance-host-")
}

// copyHostFile copies one file with content into the guest as the runtime
// does for a file mount with shared_fs = "none", and returns the mount the
// runtime then sends: dest bound from the copy.
func (h *Harness) copyHostFile(ctx context.Context, cid, dest, content string) (*agentpb.Mount, error) {
	dir, err := h.hostDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, filepath.Base(dest))
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		return nil, err
	}
	guest := h.sharedFileName(cid, dest)
	if err := h.copyToGuest(ctx, src, guest); err != nil {
		return nil, err
	}
	return &agentpb.Mount{Destination: dest, Source: guest, Type: "bind", Options: []string{"rbind", "rprivate", "rw"}}, nil
}

// copyVolume builds a kubelet ConfigMap/Secret volume (timestamped payload
// directory, "..data" link, one link per key) on this machine and copies it
// in, entry by entry as the runtime walks it (virtcontainers/
// fs_share_linux.go ShareFile ~l.332-419; runtime-rs share_fs_volume.rs
// copy_directory_to_guest ~l.630-900), and returns the read-only mount.
func (h *Harness) copyVolume(ctx context.Context, cid, dest string, keys map[string]string) (*agentpb.Mount, error) {
	dir, err := h.hostDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	vol := filepath.Join(dir, filepath.Base(dest))
	if err := os.MkdirAll(filepath.Join(vol, kubeletTimestamp), 0o755); err != nil {
		return nil, err
	}
	for k, v := range keys {
		if err := os.WriteFile(filepath.Join(vol, kubeletTimestamp, k), []byte(v), 0o644); err != nil {
			return nil, err
		}
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(vol, k)); err != nil {
			return nil, err
		}
	}
	if err := os.Symlink(kubeletTimestamp, filepath.Join(vol, "..data")); err != nil {
		return nil, err
	}
	guest := h.sharedFileName(cid, dest)
	if err := h.copyToGuest(ctx, vol, guest); err != nil {
		return nil, err
	}
	return &agentpb.Mount{Destination: dest, Source: guest, Type: "bind", Options: []string{"rbind", "rprivate", "ro"}}, nil
}

// copyEmptyDir copies a disk emptyDir in. Without a shared file system both
// runtimes copy it once per pod as a sandbox-scoped directory
// <shared>/sandbox-<hex>-<volume> (fs_share_linux.go shareFileName ~l.310
// and mustCopyEmptyDir ~l.325; runtime-rs share_fs_volume.rs ~l.424-429).
func (h *Harness) copyEmptyDir(ctx context.Context, name, dest string) (*agentpb.Mount, error) {
	dir, err := h.hostDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	vol := filepath.Join(dir, name)
	if err := os.Mkdir(vol, 0o777); err != nil {
		return nil, err
	}
	if err := os.Chmod(vol, 0o777); err != nil { // past the umask, as kubelet makes it
		return nil, err
	}
	guest := filepath.Join(h.cfg.KataRunDir, "shared", "containers", fmt.Sprintf("sandbox-%s%s-%s", randomID(), randomID()[:4], name))
	if err := h.copyToGuest(ctx, vol, guest); err != nil {
		return nil, err
	}
	return &agentpb.Mount{Destination: dest, Source: guest, Type: "bind", Options: []string{"rbind", "rprivate", "rw"}}, nil
}

// kubernetesWorkload runs the container a default pod spec gives: CRI's
// /etc/hostname, /etc/hosts and /etc/resolv.conf (containerd
// internal/cri/server/container_create.go ~l.1097-1145), a disk emptyDir, a
// ConfigMap and a Secret volume — all copied in with CopyFile as
// shared_fs = "none" does — a hostPath of /dev, which the runtime leaves
// with its host path for the guest's own /dev (virtcontainers/container.go,
// mount.go isHostDevice), and containerd's AppArmor profile. It then execs
// into it with the runtime's exec shape.
func kubernetesWorkload(ctx context.Context, h *Harness) error {
	cid := newID("kube")
	var opts []SpecOption
	add := func(m *agentpb.Mount, err error) error {
		if err != nil {
			return err
		}
		opts = append(opts, withMount(m))
		return nil
	}
	for _, err := range []error{
		add(h.copyHostFile(ctx, cid, "/etc/hostname", "conformance-pod\n")),
		add(h.copyHostFile(ctx, cid, "/etc/hosts", "127.0.0.1 localhost\n10.88.0.5 conformance-pod\n")),
		add(h.copyHostFile(ctx, cid, "/etc/resolv.conf", podResolvConf)),
		add(h.copyEmptyDir(ctx, "cache", "/cache")),
		add(h.copyVolume(ctx, cid, "/etc/config", map[string]string{"app.conf": "level=debug\n"})),
		add(h.copyVolume(ctx, cid, "/var/run/secrets/app", map[string]string{"token": "s3cr3t\n"})),
	} {
		if err != nil {
			return fmt.Errorf("copying the pod's files in: %w", err)
		}
	}
	opts = append(opts,
		withMount(&agentpb.Mount{Destination: "/host-dev", Source: "/dev", Type: "bind", Options: []string{"rbind", "rprivate", "rw"}}),
		SpecOption{apply: func(s *agentpb.Spec) { s.Process.ApparmorProfile = apparmorProfile }},
	)
	script := "cat /etc/hostname; grep -q conformance-pod /etc/hosts && grep -q '^nameserver 10.96.0.10$' /etc/resolv.conf && " +
		"echo cached > /cache/f && cat /cache/f /etc/config/app.conf /var/run/secrets/app/token && test -c /host-dev/null && echo devnull; " +
		"exec sleep 100000"
	if err := h.Create(ctx, cid, []string{"/bin/sh", "-c", script}, opts...); err != nil {
		return err
	}
	defer h.cleanup(cid)
	if err := h.Start(ctx, cid); err != nil {
		return err
	}
	const want = "conformance-pod\ncached\nlevel=debug\ns3cr3t\ndevnull\n"
	var got []byte
	errc := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		errc <- h.ReadStream(rctx, cid, cid, false, func(b []byte) {
			got = append(got, b...)
			if len(got) >= len(want) {
				cancel()
			}
		})
	}()
	<-errc
	if string(got) != want {
		return fmt.Errorf("workload saw %q, want %q", got, want)
	}
	return h.execLikeRuntime(ctx, cid)
}

// execLikeRuntime runs `cat /etc/config/app.conf` in cid with the exec
// process the runtime sends: containerd's exec spec with the AppArmor
// profile for the Go runtime; runtime-rs clears the profile and the
// capabilities (manager.rs exec_process ~l.213-214), leaving the agent to
// fill them from the container.
func (h *Harness) execLikeRuntime(ctx context.Context, cid string) error {
	p := h.process([]string{"/bin/cat", "/etc/config/app.conf"})
	p.ApparmorProfile = apparmorProfile
	if h.cfg.Runtime == RuntimeRs {
		p.ApparmorProfile, p.Capabilities = "", nil
	}
	const execID = "kube-exec"
	if _, err := h.Agent.ExecProcess(ctx, &agentpb.ExecProcessRequest{ContainerId: cid, ExecId: execID, Process: p}); err != nil {
		return fmt.Errorf("ExecProcess (%s runtime's shape): %w", h.cfg.Runtime, err)
	}
	o, err := h.Collect(ctx, cid, execID, false)
	if err != nil {
		return err
	}
	if o.Status != 0 || string(o.Stdout) != "level=debug\n" {
		return fmt.Errorf("exec: stdout %q stderr %q status %d", o.Stdout, o.Stderr, o.Status)
	}
	return h.Remove(ctx, cid)
}
