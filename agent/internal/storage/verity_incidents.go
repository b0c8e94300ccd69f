package storage

import "sync/atomic"

// LayerIncidents counts, since the agent started, the layers in which
// dm-verity refused a block (verity_watch.go when the kernel's event comes,
// verity.go at release when no event was seen) and the layers whose disk or
// partition went away while mounted; each is counted once per layer, where
// it is logged. GetMetrics reads them (metrics.LayerIncidents). The zero
// value is ready.
type LayerIncidents struct {
	corruptions, removed atomic.Uint64
}

// VerityCorruptions is the number of layers in which dm-verity refused a
// block.
func (c *LayerIncidents) VerityCorruptions() uint64 { return c.corruptions.Load() }

// LayerDevicesRemoved is the number of layers whose device was removed
// while they were mounted.
func (c *LayerIncidents) LayerDevicesRemoved() uint64 { return c.removed.Load() }
