package conformance

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// podResolvConf is the pod's resolver file as kubelet writes it; both
// runtimes split it on "\n" into CreateSandbox's dns, keeping the empty
// last line (virtcontainers/kata_agent.go getDNS ~l.795-812; runtime-rs
// crates/runtimes/src/manager.rs ~l.388-395).
const podResolvConf = "search conformance.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"

// createSandbox starts the pod in the order of cfg.Runtime, with both
// runtimes' shapes: CreateSandbox{hostname, dns, storages: [the pod's shm as
// an ephemeral tmpfs] (no shared-fs storage with shared_fs = "none"),
// sandbox_pidns false, sandbox_id}.
//
// Go runtime (virtcontainers/kata_agent.go startSandbox ~l.819-884, then
// sandbox.go getAndStoreGuestDetails ~l.584): Health.Check → SetPolicy when
// annotated → UpdateInterface/UpdateRoutes/AddARPNeighbors → CreateSandbox
// → GetGuestDetails → the pause container.
//
// runtime-rs (virt_container/src/sandbox.rs start ~l.1100-1160): no
// Health.Check before (its keep-alive Check starts later, health_check.rs)
// → SetPolicy → UpdateInterface/AddARPNeighbors/UpdateRoutes →
// CreateSandbox → GetGuestDetails → GetOOMEvent loop → the pause container.
func createSandbox(ctx context.Context, h *Harness) error {
	rs := h.cfg.Runtime == RuntimeRs
	if !rs {
		resp, err := h.Health.Check(ctx, &agentpb.CheckRequest{})
		if err != nil {
			return fmt.Errorf("Health.Check: %w", err)
		}
		if resp.Status != agentpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("Health.Check: status %v, want SERVING", resp.Status)
		}
	}
	if h.cfg.Policy != "" {
		if _, err := h.Agent.SetPolicy(ctx, &agentpb.SetPolicyRequest{Policy: h.cfg.Policy}); err != nil {
			return fmt.Errorf("SetPolicy: %w", err)
		}
	}
	if err := h.setupNetwork(ctx); err != nil {
		return err
	}
	h.baseMounts = h.mountsUnderRunDir()
	// kata_agent.go setupStorages ~l.960-973; runtime-rs
	// resource/src/manager_inner.rs get_storage_for_sandbox ~l.431-458.
	shm := filepath.Join(h.cfg.KataRunDir, "sandbox", "shm")
	if _, err := h.Agent.CreateSandbox(ctx, &agentpb.CreateSandboxRequest{
		Hostname: "conformance", SandboxId: h.sandboxID, Dns: strings.Split(podResolvConf, "\n"),
		Storages: []*agentpb.Storage{{
			Driver: "ephemeral", Source: "shm", Fstype: "tmpfs", MountPoint: shm,
			Options: []string{"noexec", "nosuid", "nodev", "mode=1777", "size=67108864"},
		}},
	}); err != nil {
		return fmt.Errorf("CreateSandbox: %w", err)
	}
	h.shmPath = shm
	// The runtime refuses a guest whose details it cannot read; the
	// sandbox is still used so the other scenarios can run.
	var detailsErr error
	if _, err := h.Agent.GetGuestDetails(ctx, &agentpb.GuestDetailsRequest{MemBlockSize: true, MemHotplugProbe: true}); err != nil {
		detailsErr = fmt.Errorf("GetGuestDetails: %w", err)
	}
	h.sandboxMounts = h.mountsUnderRunDir()
	// containerd's sandbox spec binds the pod's resolv.conf for Kata
	// (internal/cri/server/podsandbox/sandbox_run_linux.go ~l.131-145); with
	// shared_fs = "none" the runtime copies it in and binds the copy.
	resolv, err := h.copyHostFile(ctx, h.sandboxID, "/etc/resolv.conf", podResolvConf)
	if err != nil {
		return fmt.Errorf("pause container: %w", err)
	}
	if err := h.Create(ctx, h.sandboxID, []string{"/bin/sleep", "100000"}, withMount(resolv)); err != nil {
		return fmt.Errorf("pause container (containerd's pod sysctls %v): %w", podSysctls, err)
	}
	if err := h.Start(ctx, h.sandboxID); err != nil {
		return err
	}
	return detailsErr
}

// destroySandbox tears the pod down. Both runtimes kill and remove the
// pause container; the Go runtime then sends DestroySandbox
// (kata_agent.go stopSandbox ~l.980) and nothing the sandbox mounted may
// stay. runtime-rs never sends it — it stops the VM
// (virt_container/src/sandbox.rs ~l.1334-1340) — so the agent must not need
// it: everything the containers mounted is gone already, and only the
// sandbox's own storages remain.
func destroySandbox(ctx context.Context, h *Harness) error {
	if err := h.Remove(ctx, h.sandboxID); err != nil {
		return err
	}
	if h.cfg.Runtime == RuntimeRs {
		return h.noLeaks(ctx, h.sandboxMounts)
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
