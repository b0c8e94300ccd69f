package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/image"
	"github.com/cocoon-tee/cocoon/agent/reaper"
	"github.com/cocoon-tee/cocoon/agent/sandbox"
	"github.com/cocoon-tee/cocoon/agent/storage"
)

// newSandbox builds the container side of the agent: the storage driver
// table and the sandbox that runs containers. The agent becomes a child
// subreaper so that orphans inside the guest are collected (package reaper).
// unseal replaces sealed secrets in a container's environment.
func newSandbox(cfg config.Config, log *slog.Logger, imageDriver *image.Driver, unseal func(context.Context, []string) ([]string, error)) (*sandbox.Sandbox, *storage.Manager, error) {
	if err := reaper.SetSubreaper(); err != nil {
		log.Warn("cannot become a child subreaper; orphans go to the guest's init", "error", err.Error())
	}
	stor, err := storage.NewDefault(storage.Options{KataRunDir: cfg.KataRunDir, HotplugTimeout: cfg.HotplugTimeout, Log: log})
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
	pod, err := sandbox.New(sandbox.Options{
		KataRunDir:   cfg.KataRunDir,
		StateDir:     cfg.StateDir,
		CgroupParent: cfg.CgroupParent,
		PipeSize:     int(cfg.ContainerPipeSize),
		Storage:      stor,
		Log:          log,
		UnsealEnv:    unseal,
		Private:      private,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: %w", err)
	}
	return pod, stor, nil
}

// destroyOnExit removes whatever containers are left when the agent stops
// serving, so that no process, mount or cgroup outlives it.
func destroyOnExit(ctx context.Context, pod *sandbox.Sandbox, log *slog.Logger) {
	if len(pod.Containers()) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := pod.Destroy(dctx); err != nil {
		log.Warn("leftover containers not fully removed", "error", err.Error())
	}
}
