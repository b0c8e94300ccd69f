package conformance

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// createSandbox does what the runtime does when a pod starts: health check,
// guest details, CreateSandbox, then the pause container (exec_id =
// container id) started.
func createSandbox(ctx context.Context, h *Harness) error {
	resp, err := h.Health.Check(ctx, &agentpb.CheckRequest{})
	if err != nil {
		return fmt.Errorf("Health.Check: %w", err)
	}
	if resp.Status != agentpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("Health.Check: status %v, want SERVING", resp.Status)
	}
	// The runtime refuses a guest whose details it cannot read; the
	// sandbox is still created so the other scenarios can run.
	var detailsErr error
	if _, err := h.Agent.GetGuestDetails(ctx, &agentpb.GuestDetailsRequest{MemBlockSize: true, MemHotplugProbe: true}); err != nil {
		detailsErr = fmt.Errorf("GetGuestDetails: %w", err)
	}
	h.baseMounts = h.mountsUnderRunDir()
	// The runtime sends the pod's /dev/shm as an ephemeral storage and
	// bind-mounts it into every container.
	shm := filepath.Join(h.cfg.KataRunDir, "sandbox", "shm")
	if _, err := h.Agent.CreateSandbox(ctx, &agentpb.CreateSandboxRequest{
		Hostname: "conformance", SandboxId: h.sandboxID, Dns: []string{"nameserver 127.0.0.1"},
		Storages: []*agentpb.Storage{{
			Driver: "ephemeral", Source: "shm", Fstype: "tmpfs", MountPoint: shm,
			Options: []string{"noexec", "nosuid", "nodev", "mode=1777", "size=67108864"},
		}},
	}); err != nil {
		return fmt.Errorf("CreateSandbox: %w", err)
	}
	h.shmPath = shm
	if err := h.Create(ctx, h.sandboxID, []string{"/bin/sleep", "100000"}); err != nil {
		return fmt.Errorf("pause container: %w", err)
	}
	if err := h.Start(ctx, h.sandboxID); err != nil {
		return err
	}
	return detailsErr
}

// destroySandbox tears the pod down like the runtime: kill and remove the
// pause container, DestroySandbox, and nothing the sandbox mounted may stay.
func destroySandbox(ctx context.Context, h *Harness) error {
	if err := h.Remove(ctx, h.sandboxID); err != nil {
		return err
	}
	if _, err := h.Agent.DestroySandbox(ctx, &agentpb.DestroySandboxRequest{}); err != nil {
		return fmt.Errorf("DestroySandbox: %w", err)
	}
	return h.noLeaks(ctx, h.baseMounts)
}

// containerLifecycle runs one workload container start to finish and checks
// both streams and the exit status.
func containerLifecycle(ctx context.Context, h *Harness) error {
	o, err := h.RunContainer(ctx, newID("workload"), []string{"/bin/sh", "-c", "echo hello from the workload; echo to stderr >&2"})
	if err != nil {
		return err
	}
	if string(o.Stdout) != "hello from the workload\n" || string(o.Stderr) != "to stderr\n" || o.Status != 0 {
		return fmt.Errorf("got stdout %q stderr %q status %d", o.Stdout, o.Stderr, o.Status)
	}
	return nil
}

// createRemoveCycles creates, starts, waits for and removes 100 containers
// and then checks that no mount and no zombie was left behind.
func createRemoveCycles(ctx context.Context, h *Harness) error {
	before := h.mountsUnderRunDir()
	for i := 0; i < 100; i++ {
		o, err := h.RunContainer(ctx, newID(fmt.Sprintf("cycle%03d", i)), []string{"/bin/true"})
		if err != nil {
			return fmt.Errorf("cycle %d: %w", i, err)
		}
		if o.Status != 0 {
			return fmt.Errorf("cycle %d: /bin/true exited %d", i, o.Status)
		}
	}
	return h.noLeaks(ctx, before)
}

// noLeaks checks that the mounts under the run directory are back to
// before and that the agent has no zombie children. Reaping is
// asynchronous, so both get a few seconds to settle.
func (h *Harness) noLeaks(ctx context.Context, before map[string]int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		extra := diffMounts(before, h.mountsUnderRunDir())
		zombies := h.zombies()
		if len(extra) == 0 && len(zombies) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("left behind: mounts %v, zombie children of the agent %v", extra, zombies)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sandboxShm checks that the pod's /dev/shm is one tmpfs shared by its
// containers: what one container writes there, the next one reads.
func sandboxShm(ctx context.Context, h *Harness) error {
	if h.shmPath == "" {
		return fmt.Errorf("the sandbox has no shm storage (pod/create-sandbox failed)")
	}
	o, err := h.RunContainer(ctx, newID("shm-writer"), []string{"/bin/sh", "-c", "grep ' /dev/shm ' /proc/mounts && echo shared > /dev/shm/token"})
	if err != nil {
		return err
	}
	if o.Status != 0 || !strings.Contains(string(o.Stdout), "tmpfs") {
		return fmt.Errorf("writer: stdout %q stderr %q status %d", o.Stdout, o.Stderr, o.Status)
	}
	o, err = h.RunContainer(ctx, newID("shm-reader"), []string{"/bin/cat", "/dev/shm/token"})
	if err != nil {
		return err
	}
	if o.Status != 0 || string(o.Stdout) != "shared\n" {
		return fmt.Errorf("reader: stdout %q stderr %q status %d", o.Stdout, o.Stderr, o.Status)
	}
	return nil
}
