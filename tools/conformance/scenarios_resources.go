package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// oom runs a container that touches 64 MiB under a 32 MiB limit: the kernel
// kills it, WaitProcess says 137 and GetOOMEvent names the container.
func oom(ctx context.Context, h *Harness) error {
	cid := newID("oom")
	if err := h.Create(ctx, cid, []string{"/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"}, WithMemoryLimit(32<<20)); err != nil {
		return err
	}
	defer h.cleanup(cid)
	// The runtime keeps one GetOOMEvent call outstanding; so does this.
	evctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	events := make(chan error, 1)
	go func() {
		for {
			ev, err := h.Agent.GetOOMEvent(evctx, &agentpb.GetOOMEventRequest{})
			if err != nil {
				events <- fmt.Errorf("GetOOMEvent: %w", err)
				return
			}
			if ev.ContainerId == cid {
				events <- nil
				return
			}
		}
	}()
	if err := h.Start(ctx, cid); err != nil {
		return err
	}
	o, err := h.Collect(ctx, cid, cid, false)
	if err != nil {
		return err
	}
	if o.Status != 137 {
		return fmt.Errorf("status %d, want 137 (OOM kill); stderr %q", o.Status, o.Stderr)
	}
	if err := <-events; err != nil {
		return fmt.Errorf("no OOM event for %s: %w", cid, err)
	}
	return h.Remove(ctx, cid)
}

// pauseResume freezes a container whose loop bumps a counter in its root
// file system (read directly from here, since exec into a frozen container
// would block) and checks the counter stands still until resumed.
func pauseResume(ctx context.Context, h *Harness) error {
	cid := newID("pause")
	loop := "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; usleep 10000; done"
	if err := h.Create(ctx, cid, []string{"/bin/sh", "-c", loop}); err != nil {
		return err
	}
	defer h.cleanup(cid)
	if err := h.Start(ctx, cid); err != nil {
		return err
	}
	counter := filepath.Join(h.RootfsPath(cid), "tmp", "counter")
	read := func() string { b, _ := os.ReadFile(counter); return strings.TrimSpace(string(b)) }
	if err := until(ctx, func() bool { return read() != "" }); err != nil {
		return fmt.Errorf("the counter never started: %w", err)
	}
	if _, err := h.Agent.PauseContainer(ctx, &agentpb.PauseContainerRequest{ContainerId: cid}); err != nil {
		return fmt.Errorf("PauseContainer: %w", err)
	}
	frozen := read()
	time.Sleep(300 * time.Millisecond) // ~30 loop iterations if it were running
	if now := read(); now != frozen {
		return fmt.Errorf("counter moved from %q to %q while paused", frozen, now)
	}
	if _, err := h.Agent.ResumeContainer(ctx, &agentpb.ResumeContainerRequest{ContainerId: cid}); err != nil {
		return fmt.Errorf("ResumeContainer: %w", err)
	}
	if err := until(ctx, func() bool { v := read(); return v != "" && v != frozen }); err != nil {
		return fmt.Errorf("counter stuck at %q after resume: %w", frozen, err)
	}
	return h.Remove(ctx, cid)
}

// until polls cond every 10 ms for up to 10 s.
func until(ctx context.Context, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// stats checks that a running container reports memory and CPU use.
func stats(ctx context.Context, h *Harness) error {
	cid, err := h.startLongRunning(ctx, "stats")
	if err != nil {
		return err
	}
	defer h.cleanup(cid)
	r, err := h.Agent.StatsContainer(ctx, &agentpb.StatsContainerRequest{ContainerId: cid})
	if err != nil {
		return fmt.Errorf("StatsContainer: %w", err)
	}
	cg := r.GetCgroupStats()
	if cg.GetMemoryStats().GetUsage().GetUsage() == 0 {
		return fmt.Errorf("memory usage is zero: %v", cg.GetMemoryStats())
	}
	if cg.GetCpuStats().GetCpuUsage().GetTotalUsage() == 0 {
		return fmt.Errorf("CPU usage is zero: %v", cg.GetCpuStats())
	}
	return h.Remove(ctx, cid)
}

// wantCode checks a call failed with the given status code.
func wantCode(what string, err error, code codes.Code) error {
	if got := status.Code(err); got != code {
		return fmt.Errorf("%s: got %v (%v), want %v", what, got, err, code)
	}
	return nil
}

// unknownContainer: every container rpc answers INVALID_ARGUMENT for a
// container id the agent does not know.
func unknownContainer(ctx context.Context, h *Harness) error {
	const id = "no-such-container"
	var errs []error
	_, err := h.Agent.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: id})
	errs = append(errs, wantCode("StartContainer", err, codes.InvalidArgument))
	_, err = h.Agent.ExecProcess(ctx, &agentpb.ExecProcessRequest{ContainerId: id, ExecId: "x", Process: h.process([]string{"/bin/true"})})
	errs = append(errs, wantCode("ExecProcess", err, codes.InvalidArgument))
	_, err = h.Agent.SignalProcess(ctx, &agentpb.SignalProcessRequest{ContainerId: id, Signal: 9})
	errs = append(errs, wantCode("SignalProcess", err, codes.InvalidArgument))
	_, err = h.Agent.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: id})
	errs = append(errs, wantCode("WaitProcess", err, codes.InvalidArgument))
	_, err = h.Agent.StatsContainer(ctx, &agentpb.StatsContainerRequest{ContainerId: id})
	errs = append(errs, wantCode("StatsContainer", err, codes.InvalidArgument))
	_, err = h.Agent.PauseContainer(ctx, &agentpb.PauseContainerRequest{ContainerId: id})
	errs = append(errs, wantCode("PauseContainer", err, codes.InvalidArgument))
	_, err = h.Agent.ReadStdout(ctx, &agentpb.ReadStreamRequest{ContainerId: id, Len: readLen})
	errs = append(errs, wantCode("ReadStdout", err, codes.InvalidArgument))
	return errors.Join(errs...)
}

// unknownExec: process rpcs answer NOT_FOUND for an exec id the container
// does not have.
func unknownExec(ctx context.Context, h *Harness) error {
	cid, err := h.startLongRunning(ctx, "noexec")
	if err != nil {
		return err
	}
	defer h.cleanup(cid)
	const id = "no-such-exec"
	var errs []error
	_, err = h.Agent.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: id})
	errs = append(errs, wantCode("WaitProcess", err, codes.NotFound))
	_, err = h.Agent.SignalProcess(ctx, &agentpb.SignalProcessRequest{ContainerId: cid, ExecId: id, Signal: 9})
	errs = append(errs, wantCode("SignalProcess", err, codes.NotFound))
	_, err = h.Agent.ReadStdout(ctx, &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: id, Len: readLen})
	errs = append(errs, wantCode("ReadStdout", err, codes.NotFound))
	_, err = h.Agent.WriteStdin(ctx, &agentpb.WriteStreamRequest{ContainerId: cid, ExecId: id, Data: []byte("x")})
	errs = append(errs, wantCode("WriteStdin", err, codes.NotFound))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return h.Remove(ctx, cid)
}

// ephemeralVolume sends a tmpfs storage with a container (an emptyDir with
// medium Memory) and checks the container sees and uses it and that the
// mount is gone after the container.
func ephemeralVolume(ctx context.Context, h *Harness) error {
	mp := filepath.Join(h.cfg.KataRunDir, "sandbox", "ephemeral", newID("vol"))
	st := &agentpb.Storage{Driver: "ephemeral", Source: "tmpfs", Fstype: "tmpfs", MountPoint: mp, Options: []string{"size=16m"}}
	o, err := h.RunContainer(ctx, newID("volume"), []string{"/bin/sh", "-c", "grep ' /data ' /proc/mounts && echo written > /data/f && cat /data/f"}, WithStorage(st, "/data"))
	if err != nil {
		return err
	}
	if !strings.Contains(string(o.Stdout), "tmpfs") || !strings.Contains(string(o.Stdout), "written") || o.Status != 0 {
		return fmt.Errorf("volume not seen: stdout %q stderr %q status %d", o.Stdout, o.Stderr, o.Status)
	}
	if n := h.mountsUnderRunDir()[mp]; n != 0 {
		return fmt.Errorf("volume %s still mounted %d times after its only container went", mp, n)
	}
	return nil
}

// overlayRootfs gives a container its root file system as an overlayfs
// storage (a read-only lower layer plus the agent-made writable upper that
// io.katacontainers.fs-opt.overlay-rw asks for) mounted at Root.Path, the
// guest-pull location <run dir>/<id>/rootfs. Writes land in the upper layer,
// the lower layer stays untouched.
func overlayRootfs(ctx context.Context, h *Harness) error {
	cid := newID("overlay")
	lower := filepath.Join(h.cfg.KataRunDir, "shared", ".conformance", "lower-"+cid)
	if err := h.rootfs.build(lower); err != nil {
		return err
	}
	defer os.RemoveAll(lower)
	root := filepath.Join(h.cfg.KataRunDir, cid, "rootfs")
	st := &agentpb.Storage{
		Driver: "overlayfs", Source: "overlay", Fstype: "overlay", MountPoint: root,
		Options: []string{"lowerdir=" + lower, "io.katacontainers.fs-opt.overlay-rw"},
	}
	spec := h.Spec(cid, []string{"/bin/sh", "-c", "echo changed > /etc/hosts && grep ' / ' /proc/mounts && cat /etc/hosts"})
	spec.Root.Path = root
	if _, err := h.Agent.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: cid, ExecId: cid, OCI: spec, Storages: []*agentpb.Storage{st}}); err != nil {
		return fmt.Errorf("CreateContainer with an overlay rootfs: %w", err)
	}
	defer h.cleanup(cid)
	if err := h.Start(ctx, cid); err != nil {
		return err
	}
	o, err := h.Collect(ctx, cid, cid, false)
	if err != nil {
		return err
	}
	if o.Status != 0 || !strings.Contains(string(o.Stdout), "overlay") || !strings.HasSuffix(string(o.Stdout), "changed\n") {
		return fmt.Errorf("stdout %q stderr %q status %d", o.Stdout, o.Stderr, o.Status)
	}
	if b, _ := os.ReadFile(filepath.Join(lower, "etc", "hosts")); string(b) == "changed\n" {
		return errors.New("the write reached the read-only lower layer")
	}
	if err := h.Remove(ctx, cid); err != nil {
		return err
	}
	if n := h.mountsUnderRunDir()[root]; n != 0 {
		return fmt.Errorf("overlay rootfs still mounted after RemoveContainer")
	}
	return nil
}
