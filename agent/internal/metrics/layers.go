package metrics

import "github.com/prometheus/client_golang/prometheus"

// LayerIncidents is what the storage side reports about host-shared
// verified EROFS layers (docs/layers.md): counts since the agent started.
// Declared here so that metrics needs no storage package; nil in Options
// means the families are not exported.
type LayerIncidents interface {
	// VerityCorruptions counts layers in which dm-verity refused a block.
	VerityCorruptions() uint64
	// LayerDevicesRemoved counts layers whose disk went away while mounted.
	LayerDevicesRemoved() uint64
}

// layerCounters exports the incidents as two counters, read at each gather.
func layerCounters(l LayerIncidents) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cocoon_agent_dm_verity_corruptions_total",
			Help: "Host-shared EROFS layers in which dm-verity refused a block (reads of it failed with EIO).",
		}, func() float64 { return float64(l.VerityCorruptions()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cocoon_agent_layer_devices_removed_total",
			Help: "Host-shared EROFS layers whose disk or partition was removed while mounted.",
		}, func() float64 { return float64(l.LayerDevicesRemoved()) }),
	}
}
