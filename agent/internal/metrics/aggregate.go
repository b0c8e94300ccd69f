package metrics

import (
	"context"
	"slices"

	dto "github.com/prometheus/client_model/go"
)

// The aggregate set is what GetMetrics returns when the owner's cocoon.toml
// says metrics = "aggregate": pod-wide figures the host can estimate from
// outside the VM anyway (its vCPU time, memory it hands the VM), and
// nothing per container, per disk, per interface or about the agent's own
// process, whose I/O counters follow the workload's output.
var aggregate = map[string]func(*dto.Metric) bool{
	"kata_guest_load":  nil,
	"kata_guest_tasks": nil,
	// Memory: totals only; the page cache and anonymous split follow
	// the workload's file and heap use.
	"kata_guest_meminfo": labelIn("item", "mem_total", "mem_free", "mem_available"),
	// CPU: the guest-wide total, not per vCPU.
	"kata_guest_cpu_time":     labelIn("cpu", "total"),
	"kata_agent_scrape_count": nil,
	// Verified-layer incidents: the host serves every read of the layer
	// disks and unplugs them itself, so it learns nothing from a count of
	// layers that failed verification or lost their disk; the owner
	// learns that the host tampered with the pod's image or pulled it away.
	"cocoon_agent_dm_verity_corruptions_total": nil,
	"cocoon_agent_layer_devices_removed_total": nil,
}

func labelIn(name string, values ...string) func(*dto.Metric) bool {
	return func(m *dto.Metric) bool {
		for _, l := range m.GetLabel() {
			if l.GetName() == name && slices.Contains(values, l.GetValue()) {
				return true
			}
		}
		return false
	}
}

// GatherAggregate returns the aggregate set in the Prometheus text format.
func (m *Metrics) GatherAggregate(context.Context) (string, error) {
	return m.gather(aggregateOnly)
}

// aggregateOnly returns the part of a family the aggregate set has, or nil.
func aggregateOnly(mf *dto.MetricFamily) *dto.MetricFamily {
	keep, ok := aggregate[mf.GetName()]
	if !ok {
		return nil
	}
	if keep == nil {
		return mf
	}
	var ms []*dto.Metric
	for _, x := range mf.Metric {
		if keep(x) {
			ms = append(ms, x)
		}
	}
	if len(ms) == 0 {
		return nil
	}
	mf.Metric = ms
	return mf
}
