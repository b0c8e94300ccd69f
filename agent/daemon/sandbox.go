package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/internal/image"
	"github.com/cocoon-tee/cocoon/agent/internal/observe"
	"github.com/cocoon-tee/cocoon/agent/internal/reaper"
	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
)

// newSandbox builds the container side of the agent: the storage driver
// table and the sandbox that runs containers. The agent becomes a child
// subreaper so that orphans inside the guest are collected (package reaper).
// unseal replaces sealed secrets in a container's environment; Secret
// volume files go through it too (unsealFileVia). The pod's DNS lines are
// bound over the guest's /etc/resolv.conf only when the agent is the guest's
// init: on any other machine that file is the machine's own. The storage
// counts its verified-layer incidents in layers.
func newSandbox(cfg config.Config, log *slog.Logger, imageDriver *image.Driver, unseal func(context.Context, []string) ([]string, error), obs *observe.Config, layers *storage.LayerIncidents) (*sandbox.Sandbox, *storage.Manager, error) {
	if err := reaper.SetSubreaper(); err != nil {
		log.Warn("cannot become a child subreaper; orphans go to the guest's init", "error", err.Error())
	}
	stor, err := storage.NewDefault(storage.Options{KataRunDir: cfg.KataRunDir, HotplugTimeout: cfg.HotplugTimeout, Log: log, Incidents: layers})
	if err != nil {
		return nil, nil, fmt.Errorf("storage: %w", err)
	}
	if imageDriver != nil {
		if err := stor.Register("image_guest_pull", imageDriver); err != nil {
			return nil, nil, fmt.Errorf("storage: %w", err)
		}
	}
	// No container mount may reach decrypted layers or the decision log,
	// wherever the configuration put them.
	private := []string{cfg.DecisionLog}
	if imageDriver != nil {
		private = append(private, imageDriver.StoreDir())
	}
	so := sandbox.Options{
		KataRunDir:   cfg.KataRunDir,
		StateDir:     cfg.StateDir,
		CgroupParent: cfg.CgroupParent,
		PipeSize:     int(cfg.ContainerPipeSize),
		Storage:      stor,
		Log:          log,
		UnsealEnv:    unseal,
		UnsealFile:   unsealFileVia(unseal),
		Private:      private,
		Observe:      obs,
	}
	if cfg.GuestInit {
		so.GuestResolvConf = guestResolvConf
	}
	if imageDriver != nil {
		so.TrustedStore = trustedStoreVia(stor, imageDriver)
	}
	pod, err := sandbox.New(so)
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: %w", err)
	}
	return pod, stor, nil
}

// guestResolvConf is the guest's resolver file (Kata's GUEST_DNS_FILE,
// src/agent/src/network.rs:13).
const guestResolvConf = "/etc/resolv.conf"

// trustedStoreDir is where the pod's trusted_store is mounted, inside the
// image driver's private directory: no container path reaches it.
const trustedStoreDir = "trusted_store"

// trustedStoreVia mounts a pod's trusted_store encrypted with a throw-away
// key and makes it the place new image layers are unpacked to; the release
// stops using it, then unmounts it and closes the mapping.
func trustedStoreVia(stor *storage.Manager, img *image.Driver) func(context.Context, string) (func(context.Context) error, error) {
	dir := filepath.Join(img.StoreDir(), trustedStoreDir)
	return func(ctx context.Context, dev string) (func(context.Context) error, error) {
		mt, err := stor.MountTrustedStore(ctx, dev, dir)
		if err != nil {
			return nil, err
		}
		if err := img.AddLayerRoot(dir); err != nil {
			return nil, errors.Join(err, mt.Cleanup(context.WithoutCancel(ctx)))
		}
		return func(ctx context.Context) error {
			if err := img.RemoveLayerRoot(dir); err != nil {
				return err
			}
			return mt.Cleanup(ctx)
		}, nil
	}
}

// secretFileVar names a Secret volume file's value while it passes through
// the environment unsealer.
const secretFileVar = "secret-file"

// unsealFileVia unseals one value with the environment unsealer, which
// already knows whether attestation is on and how to reach the KBS. Its
// errors name the variable; that name is dropped again so the error reads
// as the file's (the sandbox names the mount).
func unsealFileVia(env func(context.Context, []string) ([]string, error)) func(context.Context, string) (string, error) {
	if env == nil {
		return nil
	}
	return func(ctx context.Context, value string) (string, error) {
		out, err := env(ctx, []string{secretFileVar + "=" + value})
		if err != nil {
			if inner := errors.Unwrap(err); inner != nil && strings.HasPrefix(err.Error(), "environment variable "+secretFileVar+": ") {
				err = inner
			}
			return "", err
		}
		if len(out) != 1 {
			return "", fmt.Errorf("unsealer returned %d values for one", len(out))
		}
		plain, ok := strings.CutPrefix(out[0], secretFileVar+"=")
		if !ok {
			return "", fmt.Errorf("unsealer renamed the value")
		}
		return plain, nil
	}
}

// destroyOnExit tears down whatever is left of the pod when the agent stops
// serving — containers, sandbox storages and namespaces — so that no
// process, mount or cgroup outlives it. runtime-rs never sends
// DestroySandbox; it stops the VM.
func destroyOnExit(ctx context.Context, pod *sandbox.Sandbox, log *slog.Logger) {
	if !pod.Active() {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := pod.Destroy(dctx); err != nil {
		log.WarnContext(ctx, "leftover containers not fully removed", "error", err.Error())
	}
}
