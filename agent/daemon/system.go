package daemon

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"

	"github.com/vishvananda/netns"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/copyfile"
	"github.com/cocoon-tee/cocoon/agent/guest"
	"github.com/cocoon-tee/cocoon/agent/metrics"
	"github.com/cocoon-tee/cocoon/agent/network"
	"github.com/cocoon-tee/cocoon/agent/rpc"
	"github.com/cocoon-tee/cocoon/agent/storage"
	"github.com/cocoon-tee/cocoon/agent/version"
)

// newSystem builds the guest-wide services: networking in the agent's own
// network namespace (the guest's), guest management, CopyFile under
// <KataRunDir>/shared/containers, and metrics.
func newSystem(cfg config.Config, log *slog.Logger, stor *storage.Manager, containers metrics.ContainerStats) (rpc.System, func(), error) {
	nm, err := network.New(netns.None())
	if err != nil {
		return rpc.System{}, nil, fmt.Errorf("network: %w", err)
	}
	shared := filepath.Join(cfg.KataRunDir, "shared", "containers")
	met, err := metrics.New(metrics.Options{Containers: containers, Log: log})
	if err != nil {
		nm.Close()
		return rpc.System{}, nil, err
	}
	return rpc.System{
		Network: nm,
		Guest: guest.New(guest.Options{
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
