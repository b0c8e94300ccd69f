// Package metrics answers GetMetrics: Prometheus text with the agent's own
// process metrics and the guest's (memory, load, CPU, disks, network,
// per-container cgroup usage). Names follow the Kata agent's kata_agent_*
// and kata_guest_* families, because the host-side monitor scrapes and
// relabels them. Everything lives in a private registry.
package metrics

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// ContainerStats is what the container side provides: container id → its
// cgroup path relative to the cgroup mount (e.g. "/kata/<id>"). Declared
// here so that metrics needs no container package; nil means no
// per-container metrics.
type ContainerStats interface {
	ContainerCgroups() map[string]string
}

// Options configure the collector.
type Options struct {
	Proc       string // /proc
	CgroupRoot string // /sys/fs/cgroup
	Containers ContainerStats
	// Layers, when set, adds the verified-layer incident counters.
	Layers LayerIncidents
	Log    *slog.Logger
}

// Metrics owns the registry.
type Metrics struct {
	reg     *prometheus.Registry
	scrapes prometheus.Counter
	mu      sync.Mutex // one gather at a time: procfs reads are not free
}

// userHZ is the fixed unit of /proc/<pid>/stat and /proc/stat times.
const userHZ = 100

// New builds the registry.
func New(o Options) (*Metrics, error) {
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	if o.CgroupRoot == "" {
		o.CgroupRoot = "/sys/fs/cgroup"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		scrapes: prometheus.NewCounter(prometheus.CounterOpts{Name: "kata_agent_scrape_count", Help: "Metrics scrape count"}),
	}
	cs := []prometheus.Collector{
		m.scrapes,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "kata_agent"}),
		newProcfs(o),
	}
	if o.Layers != nil {
		cs = append(cs, layerCounters(o.Layers)...)
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// Gather returns the metrics in the Prometheus text format.
func (m *Metrics) Gather(context.Context) (string, error) { return m.gather(nil) }

// gather scrapes once and encodes the families in the Prometheus text
// format; pick, when set, returns what of each family to encode (nil: none).
func (m *Metrics) gather(pick func(*dto.MetricFamily) *dto.MetricFamily) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.scrapes.Inc()
	mfs, err := m.reg.Gather()
	if err != nil && len(mfs) == 0 {
		return "", fmt.Errorf("gather metrics: %w", err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if pick != nil {
			if mf = pick(mf); mf == nil {
				continue
			}
		}
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return "", fmt.Errorf("encode metrics: %w", err)
		}
	}
	return buf.String(), nil
}

// procfs collects the kata_agent_* and kata_guest_* families from files.
type procfs struct {
	o     Options
	descs map[string]*prometheus.Desc
}

// families: name → help and labels.
func families() map[string]struct {
	help   string
	labels []string
} {
	type f = struct {
		help   string
		labels []string
	}
	return map[string]f{
		"kata_agent_threads":                      {"Agent process threads", nil},
		"kata_agent_total_time":                   {"Agent process total time", nil},
		"kata_agent_total_vm":                     {"Agent process total VM size", nil},
		"kata_agent_total_rss":                    {"Agent process total RSS size", nil},
		"kata_agent_proc_status":                  {"Agent process status.", []string{"item"}},
		"kata_agent_io_stat":                      {"Agent process IO statistics.", []string{"item"}},
		"kata_agent_proc_stat":                    {"Agent process statistics.", []string{"item"}},
		"kata_guest_load":                         {"Guest system load.", []string{"item"}},
		"kata_guest_tasks":                        {"Guest system load.", []string{"item"}},
		"kata_guest_cpu_time":                     {"Guest CPU statistics.", []string{"cpu", "item"}},
		"kata_guest_vm_stat":                      {"Guest virtual memory statistics.", []string{"item"}},
		"kata_guest_netdev_stat":                  {"Guest net devices statistics.", []string{"interface", "item"}},
		"kata_guest_diskstat":                     {"Disks statistics in system.", []string{"disk", "item"}},
		"kata_guest_meminfo":                      {"Statistics about memory usage in the system.", []string{"item"}},
		"kata_guest_container_memory_usage_bytes": {"Memory charged to a container's cgroup.", []string{"container_id"}},
		"kata_guest_container_cpu_usage_seconds":  {"CPU time consumed by a container's cgroup.", []string{"container_id"}},
	}
}

func newProcfs(o Options) *procfs {
	p := &procfs{o: o, descs: map[string]*prometheus.Desc{}}
	for name, f := range families() {
		p.descs[name] = prometheus.NewDesc(name, f.help, f.labels, nil)
	}
	return p
}

func (p *procfs) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range p.descs {
		ch <- d
	}
}

// emitter sends gauges, dropping duplicates and label values Prometheus
// refuses (procfs text is not guaranteed UTF-8).
type emitter struct {
	ch   chan<- prometheus.Metric
	seen map[string]bool
}

func (e *emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	key := d.String() + "\xff" + strings.Join(labels, "\xff")
	if e.seen[key] {
		return
	}
	e.seen[key] = true
	if m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...); err == nil {
		e.ch <- m
	}
}

func (p *procfs) open(rel string) (*os.File, error) { return os.Open(filepath.Join(p.o.Proc, rel)) }

func (p *procfs) Collect(ch chan<- prometheus.Metric) {
	e := &emitter{ch: ch, seen: map[string]bool{}}
	p.agent(e)
	p.guest(e)
	p.containers(e)
}

func (p *procfs) warn(what string, err error) {
	p.o.Log.Debug("metrics source unavailable", "source", what, "error", err)
}

// keyed emits the listed keys of a key/value file under their item names.
func (p *procfs) keyed(e *emitter, rel, family string, keys []string, item func(string) string) {
	f, err := p.open(rel)
	if err != nil {
		p.warn(rel, err)
		return
	}
	defer f.Close()
	kv, err := ParseKeyValues(f)
	if err != nil {
		p.warn(rel, err)
		return
	}
	if keys == nil {
		for k := range kv {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if v, ok := kv[k]; ok {
			e.gauge(p.descs[family], v, item(k))
		}
	}
}

func (p *procfs) samples(e *emitter, rel, family string, parse func(*os.File) ([]Sample, error)) {
	f, err := p.open(rel)
	if err != nil {
		p.warn(rel, err)
		return
	}
	defer f.Close()
	ss, err := parse(f)
	if err != nil {
		p.warn(rel, err)
		return
	}
	for _, s := range ss {
		e.gauge(p.descs[family], s.Value, s.Labels...)
	}
}
