package storage

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// Incidents of host-shared verified layers, as the records that report
// them name them in their "incident" attribute: a layer whose dm-verity
// mapping refused a block (verity_watch.go when the kernel's event comes,
// verity.go at release when no event was seen), and the disk or partition
// under a mounted layer going away. Each is reported once per layer.
const (
	incidentAttr             = "incident"
	IncidentVerityCorruption = "dm_verity_corruption"
	IncidentDeviceRemoved    = "layer_device_removed"
)

// LayerIncidents counts those incidents since the agent started, for
// GetMetrics (metrics.LayerIncidents). The storage reports incidents in
// its log, and the log the manager is given is the one channel its
// drivers share; so the count is taken there: Logger wraps the manager's
// logger and counts the records that carry an incident, which also keeps
// the metric and the log from ever disagreeing. The zero value is ready.
type LayerIncidents struct {
	corruptions, removed atomic.Uint64
}

// VerityCorruptions is the number of layers in which dm-verity refused a
// block.
func (c *LayerIncidents) VerityCorruptions() uint64 { return c.corruptions.Load() }

// LayerDevicesRemoved is the number of layers whose device was removed
// while they were mounted.
func (c *LayerIncidents) LayerDevicesRemoved() uint64 { return c.removed.Load() }

// Logger returns log, counting the incidents recorded through it; give it
// to the storage manager (Options.Log). A nil log counts without logging.
func (c *LayerIncidents) Logger(log *slog.Logger) *slog.Logger {
	next := slog.DiscardHandler
	if log != nil {
		next = log.Handler()
	}
	return slog.New(&incidentHandler{c: c, next: next})
}

// incidentHandler counts, then passes every record on.
type incidentHandler struct {
	c    *LayerIncidents
	next slog.Handler
}

// Enabled says yes to errors even when the next handler would drop them:
// incidents are logged at ERROR and must be counted.
func (h *incidentHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h *incidentHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != incidentAttr {
			return true
		}
		switch a.Value.String() {
		case IncidentVerityCorruption:
			h.c.corruptions.Add(1)
		case IncidentDeviceRemoved:
			h.c.removed.Add(1)
		}
		return false
	})
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *incidentHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &incidentHandler{c: h.c, next: h.next.WithAttrs(as)}
}

func (h *incidentHandler) WithGroup(name string) slog.Handler {
	return &incidentHandler{c: h.c, next: h.next.WithGroup(name)}
}
