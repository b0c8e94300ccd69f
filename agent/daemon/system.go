package daemon

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"

	"github.com/vishvananda/netns"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/internal/copyfile"
	"github.com/cocoon-tee/cocoon/agent/internal/initsys"
	"github.com/cocoon-tee/cocoon/agent/internal/metrics"
	"github.com/cocoon-tee/cocoon/agent/internal/network"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/agent/internal/system"
	"github.com/cocoon-tee/cocoon/agent/internal/version"
	"github.com/cocoon-tee/cocoon/agent/rpc"
)

// setupSystem does the init system's duties when the agent is the guest's
// init: mount the kernel file systems and cgroups, bring up lo, load the
// image's kernel modules. Any other agent runs on a system set up already.
func setupSystem(cfg config.Config, log *slog.Logger) error {
	if !cfg.GuestInit {
		return nil
	}
	if err := initsys.Setup(cfg.UnifiedCgroup); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	// A module that fails to load costs a feature, not the pod.
	if err := initsys.LoadModules("/"); err != nil {
		log.Warn("kernel modules not loaded", "error", err.Error())
	}
	return nil
}

// newSystem builds the guest-wide services: networking in the agent's own
// network namespace (the guest's), guest management, CopyFile under
// <KataRunDir>/shared/containers, and metrics.
func newSystem(cfg config.Config, log *slog.Logger, stor *storage.Manager, containers metrics.ContainerStats, layers metrics.LayerIncidents) (rpc.System, func(), error) {
	nm, err := network.New(netns.None())
	if err != nil {
		return rpc.System{}, nil, fmt.Errorf("network: %w", err)
	}
	shared := filepath.Join(cfg.KataRunDir, "shared", "containers")
	met, err := metrics.New(metrics.Options{Containers: containers, Layers: layers, Log: log})
	if err != nil {
		nm.Close()
		return rpc.System{}, nil, err
	}
	return rpc.System{
		Network: nm,
		Guest: system.New(system.Options{
			KataRunDir:     cfg.KataRunDir,
			SharedDir:      shared,
			HotplugTimeout: cfg.HotplugTimeout,
			Confidential:   cfg.Confidential,
			Version:        version.Version,
			StorageHandlers: func() []string {
				h := stor.Drivers()
				sort.Strings(h)
				return h
			},
		}),
		Files:   copyfile.New(shared, 0),
		Metrics: met,
	}, nm.Close, nil
}
