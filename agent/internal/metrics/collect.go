package metrics

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

func statusKeys() []string {
	return []string{"VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem",
		"VmData", "VmStk", "VmExe", "VmLib", "VmPTE", "VmSwap", "HugetlbPages",
		"voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"}
}

func (p *procfs) agent(e *emitter) {
	if b, err := os.ReadFile(filepath.Join(p.o.Proc, "self/stat")); err == nil {
		if st, ok := ParseProcStat(string(b)); ok {
			e.gauge(p.descs["kata_agent_threads"], st["num_threads"])
			e.gauge(p.descs["kata_agent_total_time"], (st["utime"]+st["stime"])/userHZ)
			e.gauge(p.descs["kata_agent_total_vm"], st["vsize"])
			e.gauge(p.descs["kata_agent_total_rss"], st["rss"]*float64(os.Getpagesize()))
			for _, k := range []string{"utime", "stime", "cutime", "cstime"} {
				e.gauge(p.descs["kata_agent_proc_stat"], st[k], k)
			}
		}
	} else {
		p.warn("self/stat", err)
	}
	p.keyed(e, "self/status", "kata_agent_proc_status", statusKeys(), strings.ToLower)
	p.keyed(e, "self/io", "kata_agent_io_stat",
		[]string{"rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes", "cancelled_write_bytes"},
		func(s string) string { return s })
}

// ParseProcStat reads the fields of /proc/<pid>/stat the agent reports. The
// command name may contain spaces and parentheses, so fields are counted
// from the last ')'.
func ParseProcStat(s string) (map[string]float64, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14.
	idx := map[string]int{"utime": 14, "stime": 15, "cutime": 16, "cstime": 17, "num_threads": 20, "vsize": 23, "rss": 24}
	out := map[string]float64{}
	for k, n := range idx {
		j := n - 3
		if j >= len(f) {
			return nil, false
		}
		v, err := strconv.ParseFloat(f[j], 64)
		if err != nil {
			return nil, false
		}
		out[k] = v
	}
	return out, true
}

func (p *procfs) guest(e *emitter) {
	if b, err := os.ReadFile(filepath.Join(p.o.Proc, "loadavg")); err == nil {
		if load, cur, max, err := ParseLoadavg(string(b)); err == nil {
			for i, n := range []string{"load1", "load5", "load15"} {
				e.gauge(p.descs["kata_guest_load"], load[i], n)
			}
			e.gauge(p.descs["kata_guest_tasks"], cur, "cur")
			e.gauge(p.descs["kata_guest_tasks"], max, "max")
		} else {
			p.warn("loadavg", err)
		}
	} else {
		p.warn("loadavg", err)
	}
	p.samples(e, "stat", "kata_guest_cpu_time", func(f *os.File) ([]Sample, error) { return ParseCPUStat(f, userHZ) })
	p.samples(e, "diskstats", "kata_guest_diskstat", func(f *os.File) ([]Sample, error) { return ParseDiskstats(f) })
	p.samples(e, "net/dev", "kata_guest_netdev_stat", func(f *os.File) ([]Sample, error) { return ParseNetdev(f) })
	p.keyed(e, "vmstat", "kata_guest_vm_stat", nil, func(s string) string { return s })
	p.keyed(e, "meminfo", "kata_guest_meminfo", nil, MeminfoItem)
}

// containers reads each container's cgroup, v2 first, then v1.
func (p *procfs) containers(e *emitter) {
	if p.o.Containers == nil {
		return
	}
	for id, cg := range p.o.Containers.ContainerCgroups() {
		cg = filepath.Clean("/" + cg) // a relative or ".." path stays under the root
		if v, ok := readNumber(filepath.Join(p.o.CgroupRoot, cg, "memory.current")); ok {
			e.gauge(p.descs["kata_guest_container_memory_usage_bytes"], v, id)
		} else if v, ok := readNumber(filepath.Join(p.o.CgroupRoot, "memory", cg, "memory.usage_in_bytes")); ok {
			e.gauge(p.descs["kata_guest_container_memory_usage_bytes"], v, id)
		}
		if v, ok := cpuStatUsage(filepath.Join(p.o.CgroupRoot, cg, "cpu.stat")); ok {
			e.gauge(p.descs["kata_guest_container_cpu_usage_seconds"], v/1e6, id)
		} else if v, ok := readNumber(filepath.Join(p.o.CgroupRoot, "cpuacct", cg, "cpuacct.usage")); ok {
			e.gauge(p.descs["kata_guest_container_cpu_usage_seconds"], v/1e9, id)
		}
	}
}

func readNumber(path string) (float64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	return v, err == nil
}

func cpuStatUsage(path string) (float64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	kv, err := ParseKeyValues(f)
	if err != nil {
		return 0, false
	}
	v, ok := kv["usage_usec"]
	return v, ok
}

var _ prometheus.Collector = (*procfs)(nil)
