package metrics

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// parse checks the output is valid exposition text and indexes it.
func parse(t *testing.T, text string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("invalid exposition text: %v\n%s", err, text)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			default:
				out[key] = 0
			}
		}
	}
	return out
}

func TestGatherRealSystem(t *testing.T) {
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	text, err := m.Gather(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := parse(t, text)
	for _, want := range []string{
		"kata_agent_scrape_count", "kata_agent_threads", "kata_agent_total_rss",
		"kata_agent_proc_status{item=vmrss}", "kata_agent_proc_stat{item=utime}",
		"kata_guest_load{item=load1}", "kata_guest_tasks{item=max}",
		"kata_guest_cpu_time{cpu=total}{item=user}", "kata_guest_meminfo{item=mem_total}",
		"kata_guest_netdev_stat{interface=lo}{item=recv_bytes}", "kata_agent_process_resident_memory_bytes",
		"go_goroutines",
	} {
		if _, ok := got[want]; !ok {
			t.Errorf("missing %s", want)
		}
	}
	if got["kata_guest_meminfo{item=mem_total}"] < 1<<20 {
		t.Errorf("mem_total not in bytes: %v", got["kata_guest_meminfo{item=mem_total}"])
	}
	text, _ = m.Gather(context.Background())
	if parse(t, text)["kata_agent_scrape_count"] != 2 {
		t.Error("scrape count not counting")
	}
}

type fakeContainers map[string]string

func (f fakeContainers) ContainerCgroups() map[string]string { return f }

func TestGatherFakeTree(t *testing.T) {
	proc, cg := t.TempDir(), t.TempDir()
	write(t, proc, map[string]string{
		"meminfo":     "MemTotal:        2048 kB\nActive(anon):      10 kB\nHugePages_Total:       0\nDirectMap4k:  4 kB\nSReclaimable: 1 kB\n",
		"loadavg":     "0.50 0.25 0.10 2/150 999\n",
		"stat":        "cpu  100 0 50 1000 0 0 0 0 0 0\ncpu0 100 0 50 1000 0 0 0 0 0 0\nintr 1 2 3\n",
		"vmstat":      "pgfault 42\n",
		"net/dev":     "Inter-|   Receive |  Transmit\n face |bytes packets\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n",
		"diskstats":   " 254 0 vda 5 0 40 1 0 0 0 0 0 1 1\n",
		"self/stat":   "42 (cocoon agent) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 10 123456 300 18446744073709551615\n",
		"self/status": "Name:\tcocoon\nVmRSS:\t  100 kB\nvoluntary_ctxt_switches:\t5\n",
	})
	write(t, cg, map[string]string{
		"kata/c1/memory.current":             "4096\n",
		"kata/c1/cpu.stat":                   "usage_usec 2000000\nuser_usec 1\n",
		"memory/v1/c2/memory.usage_in_bytes": "8192\n",
		"cpuacct/v1/c2/cpuacct.usage":        "3000000000\n",
	})
	m, err := New(Options{Proc: proc, CgroupRoot: cg, Containers: fakeContainers{"c1": "/kata/c1", "c2": "v1/c2", "c3": "../../etc"}})
	if err != nil {
		t.Fatal(err)
	}
	text, err := m.Gather(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := parse(t, text)
	want := map[string]float64{
		"kata_guest_meminfo{item=mem_total}":                       2048 * 1024,
		"kata_guest_meminfo{item=active_anon}":                     10 * 1024,
		"kata_guest_meminfo{item=hugepages_total}":                 0,
		"kata_guest_meminfo{item=direct_map_4k}":                   4 * 1024,
		"kata_guest_meminfo{item=s_reclaimable}":                   1024,
		"kata_guest_load{item=load5}":                              0.25,
		"kata_guest_tasks{item=cur}":                               2,
		"kata_guest_cpu_time{cpu=total}{item=system}":              0.5,
		"kata_guest_cpu_time{cpu=0}{item=idle}":                    10,
		"kata_guest_vm_stat{item=pgfault}":                         42,
		"kata_guest_netdev_stat{interface=eth0}{item=sent_bytes}":  2000,
		"kata_guest_diskstat{disk=vda}{item=sectors_read}":         40,
		"kata_agent_threads":                                       7,
		"kata_agent_total_time":                                    3,
		"kata_agent_total_vm":                                      123456,
		"kata_agent_proc_status{item=vmrss}":                       100 * 1024,
		"kata_agent_proc_status{item=voluntary_ctxt_switches}":     5,
		"kata_guest_container_memory_usage_bytes{container_id=c1}": 4096,
		"kata_guest_container_cpu_usage_seconds{container_id=c1}":  2,
		"kata_guest_container_memory_usage_bytes{container_id=c2}": 8192,
		"kata_guest_container_cpu_usage_seconds{container_id=c2}":  3,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got["kata_guest_container_memory_usage_bytes{container_id=c3}"]; ok {
		t.Error("c3's cgroup path escaped the cgroup root")
	}
	// Broken sources are skipped, not fatal.
	write(t, proc, map[string]string{"loadavg": "garbage", "stat": "cpu x y\n"})
	if _, err := m.Gather(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestMeminfoItem(t *testing.T) {
	for in, want := range map[string]string{
		"MemTotal": "mem_total", "SwapCached": "swap_cached", "Inactive(file)": "inactive_file",
		"SUnreclaim": "s_unreclaim", "KReclaimable": "k_reclaimable", "Committed_AS": "committed_as",
		"NFS_Unstable": "nfs_unstable", "AnonHugePages": "anon_hugepages", "ShmemPmdMapped": "shmem_pmd_mapped",
		"Hugepagesize": "hugepagesize", "DirectMap1G": "direct_map_1G", "Percpu": "per_cpu", "HugePages_Rsvd": "hugepages_rsvd",
	} {
		if got := MeminfoItem(in); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}

// FuzzParsers: no procfs text may panic a parser.
func FuzzParsers(f *testing.F) {
	f.Add("MemTotal: 1 kB\n")
	f.Add("0.1 0.2 0.3 1/2 3")
	f.Add("cpu 1 2 3\ncpu0 1 2\n")
	f.Add(" eth0: 1 2 3\n")
	f.Add("1 (a) b) S 1 2 3")
	f.Fuzz(func(t *testing.T, s string) {
		r := func() *strings.Reader { return strings.NewReader(s) }
		_, _ = ParseKeyValues(r())
		_, _, _, _ = ParseLoadavg(s)
		_, _ = ParseCPUStat(r(), userHZ)
		_, _ = ParseDiskstats(r())
		_, _ = ParseNetdev(r())
		_, _ = ParseProcStat(s)
		_ = MeminfoItem(s)
	})
}

func TestGatherAggregate(t *testing.T) {
	proc, cg := t.TempDir(), t.TempDir()
	write(t, proc, map[string]string{
		"meminfo":   "MemTotal:        2048 kB\nMemFree: 1024 kB\nCached: 512 kB\n",
		"loadavg":   "0.50 0.25 0.10 2/150 999\n",
		"stat":      "cpu  100 0 50 1000 0 0 0 0 0 0\ncpu0 100 0 50 1000 0 0 0 0 0 0\n",
		"net/dev":   "Inter-|   Receive |  Transmit\n face |bytes packets\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n",
		"diskstats": " 254 0 vda 5 0 40 1 0 0 0 0 0 1 1\n",
		"self/stat": "42 (cocoon agent) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 10 123456 300 18446744073709551615\n",
	})
	write(t, cg, map[string]string{"kata/c1/memory.current": "4096\n"})
	m, err := New(Options{Proc: proc, CgroupRoot: cg, Containers: fakeContainers{"c1": "/kata/c1"}})
	if err != nil {
		t.Fatal(err)
	}
	text, err := m.GatherAggregate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := parse(t, text)
	for _, k := range []string{"kata_guest_meminfo{item=mem_total}", "kata_guest_meminfo{item=mem_free}", "kata_guest_load{item=load5}", "kata_guest_cpu_time{cpu=total}{item=system}"} {
		if _, ok := got[k]; !ok {
			t.Errorf("aggregate set lacks %s", k)
		}
	}
	for k := range got {
		for _, bad := range []string{"container", "netdev", "diskstat", "cached", "cpu=cpu0", "kata_agent_total", "go_", "process_"} {
			if strings.Contains(k, bad) {
				t.Errorf("aggregate set has %s", k)
			}
		}
	}
}
