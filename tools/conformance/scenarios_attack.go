package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// attackScenarios are what a hostile host tries against a confidential
// agent (Config.Confidential). Each attempt must be refused with a clear
// status, and the pod must keep working afterwards. They only use the API
// and the shared directory the host owns anyway; the agent's own state
// directory is named by Config.StateDir.
func attackScenarios() []Scenario {
	return []Scenario{
		{Name: "attack/bind-state-dir", Run: bindStateDir},
		{Name: "attack/rootfs-in-state-dir", Run: rootfsInStateDir},
		{Name: "attack/termination-log-secret", Run: terminationLogSecret},
		{Name: "attack/fill-shared-dir", Run: fillSharedDir},
		{Name: "attack/malformed-spec-then-create", Run: malformedSpecThenCreate},
	}
}

// refused reports whether err is the refusal a hostile request deserves: a
// policy denial or an argument error, never success, a panic (INTERNAL) or
// a hang.
func refused(err error) error {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		return nil
	case codes.OK:
		return errors.New("accepted")
	}
	return fmt.Errorf("refused with %v, want PERMISSION_DENIED or INVALID_ARGUMENT: %w", status.Code(err), err)
}

// bindStateDir binds the agent's state directory (container state, image
// credentials, the decision log) into a container.
func bindStateDir(ctx context.Context, h *Harness) error {
	cid := newID("attack-bind")
	err := h.Create(ctx, cid, []string{"/bin/true"}, SpecOption{apply: func(s *agentpb.Spec) {
		s.Mounts = append(s.Mounts, &agentpb.Mount{Destination: "/loot", Source: h.cfg.StateDir, Type: "bind", Options: []string{"rbind", "ro"}})
	}})
	if err == nil {
		h.cleanup(cid)
	}
	if err := refused(err); err != nil {
		return fmt.Errorf("bind of the state dir %s: %w", h.cfg.StateDir, err)
	}
	return nil
}

// rootfsInStateDir points a container's root at the agent's state directory.
func rootfsInStateDir(ctx context.Context, h *Harness) error {
	cid := newID("attack-root")
	spec := h.Spec(cid, []string{"/bin/true"})
	spec.Root.Path = h.cfg.StateDir
	_, err := h.Agent.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: cid, ExecId: cid, OCI: spec})
	if err == nil {
		h.cleanup(cid)
	}
	if err := refused(err); err != nil {
		return fmt.Errorf("root in the state dir: %w", err)
	}
	return nil
}

// terminationLogSecret makes the termination message a symlink to a file the
// host must never read back, then asks for the message. The secret stands in
// the agent's state directory, as KBS-released credentials do.
func terminationLogSecret(ctx context.Context, h *Harness) error {
	const marker = "conformance-secret-7f3a"
	secret := filepath.Join(h.cfg.StateDir, "conformance-secret-"+randomID())
	if err := os.WriteFile(secret, []byte(marker), 0o600); err != nil {
		return fmt.Errorf("planting the secret: %w", err)
	}
	defer os.Remove(secret)
	cid := newID("attack-termlog")
	logDir := filepath.Join(h.bundleDir(cid), "termination")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	if err := os.Symlink(secret, filepath.Join(logDir, "log")); err != nil {
		return err
	}
	err := h.Create(ctx, cid, []string{"/bin/true"}, SpecOption{apply: func(s *agentpb.Spec) {
		s.Annotations["io.kubernetes.container.terminationMessagePath"] = "/dev/termination-log"
		s.Mounts = append(s.Mounts, &agentpb.Mount{Destination: "/dev/termination-log", Source: filepath.Join(logDir, "log"), Type: "bind", Options: []string{"rbind", "rw"}})
	}})
	if err != nil {
		// Refusing the symlinked source outright is the strictest answer.
		if rerr := refused(err); rerr != nil {
			return fmt.Errorf("CreateContainer with a symlinked termination log: %w", rerr)
		}
		return nil
	}
	defer h.cleanup(cid)
	d, err := h.Agent.GetDiagnosticData(ctx, &agentpb.GetDiagnosticDataRequest{ContainerId: cid, LogType: "termination_log"})
	if err == nil && strings.Contains(d.Data, marker) {
		return errors.New("GetDiagnosticData returned the secret the termination log links to")
	}
	return nil
}

// fillSharedDir copies files into the shared directory until the agent
// refuses, as a host filling the guest's memory-backed /run would; the
// agent must bound it and keep serving.
func fillSharedDir(ctx context.Context, h *Harness) error {
	const chunk = 1 << 20   // well inside ttrpc's 4 MiB message limit
	const ceiling = 2 << 30 // a guest has less memory than this to give
	dir := filepath.Join(h.cfg.KataRunDir, "shared", "containers", newID("attack-fill"))
	defer os.RemoveAll(dir)
	data := make([]byte, chunk)
	var written int64
	for i := 0; written < ceiling; i++ {
		_, err := h.Agent.CopyFile(ctx, &agentpb.CopyFileRequest{
			Path: filepath.Join(dir, fmt.Sprintf("f%d", i)), FileSize: chunk, FileMode: 0o644, DirMode: 0o755, Data: data,
		})
		if err != nil {
			if c := status.Code(err); c != codes.ResourceExhausted && c != codes.PermissionDenied {
				return fmt.Errorf("CopyFile refused after %d MiB with %v, want RESOURCE_EXHAUSTED: %w", written>>20, c, err)
			}
			break
		}
		written += chunk
	}
	if written >= ceiling {
		return fmt.Errorf("CopyFile accepted %d MiB without a bound", written>>20)
	}
	// The pod still works: a container runs and is removed.
	cid := newID("after-fill")
	if err := h.Create(ctx, cid, []string{"/bin/true"}); err != nil {
		return fmt.Errorf("after filling: %w", err)
	}
	return h.Remove(ctx, cid)
}

// malformedSpecThenCreate sends a CreateContainer whose OCI spec lacks its
// Linux section, then a well-formed one: the first is refused, the second
// works (a handler that panicked while holding a decision would hang it).
func malformedSpecThenCreate(ctx context.Context, h *Harness) error {
	bad := newID("attack-nolinux")
	spec := h.Spec(bad, []string{"/bin/true"})
	spec.Linux = nil
	if err := h.rootfs.build(h.RootfsPath(bad)); err != nil {
		return err
	}
	defer os.RemoveAll(h.bundleDir(bad))
	if _, err := h.Agent.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: bad, ExecId: bad, OCI: spec}); status.Code(err) != codes.InvalidArgument {
		return fmt.Errorf("spec without linux: %v, want INVALID_ARGUMENT", err)
	}
	cid := newID("after-malformed")
	if err := h.Create(ctx, cid, []string{"/bin/true"}); err != nil {
		return fmt.Errorf("after a malformed spec: %w", err)
	}
	return h.Remove(ctx, cid)
}
