package convert

import (
	"github.com/opencontainers/cgroups"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// StatsToProto is StatsContainer's answer for a container's statistics.
func StatsToProto(st *container.Stats) *agentpb.StatsContainerResponse {
	resp := &agentpb.StatsContainerResponse{CgroupStats: cgroupStats(st.Cgroup)}
	for _, n := range st.Network {
		resp.NetworkStats = append(resp.NetworkStats, &agentpb.NetworkStats{
			Name: n.Name, RxBytes: n.RxBytes, RxPackets: n.RxPackets, RxErrors: n.RxErrors, RxDropped: n.RxDropped,
			TxBytes: n.TxBytes, TxPackets: n.TxPackets, TxErrors: n.TxErrors, TxDropped: n.TxDropped,
		})
	}
	return resp
}

func cgroupStats(s *cgroups.Stats) *agentpb.CgroupStats {
	if s == nil {
		return nil
	}
	out := &agentpb.CgroupStats{
		CpuStats: &agentpb.CpuStats{
			CpuUsage: &agentpb.CpuUsage{
				TotalUsage:        s.CpuStats.CpuUsage.TotalUsage,
				PercpuUsage:       s.CpuStats.CpuUsage.PercpuUsage,
				UsageInKernelmode: s.CpuStats.CpuUsage.UsageInKernelmode,
				UsageInUsermode:   s.CpuStats.CpuUsage.UsageInUsermode,
			},
			ThrottlingData: &agentpb.ThrottlingData{
				Periods:          s.CpuStats.ThrottlingData.Periods,
				ThrottledPeriods: s.CpuStats.ThrottlingData.ThrottledPeriods,
				ThrottledTime:    s.CpuStats.ThrottlingData.ThrottledTime,
			},
		},
		MemoryStats: &agentpb.MemoryStats{
			Cache:        s.MemoryStats.Cache,
			Usage:        memData(s.MemoryStats.Usage),
			SwapUsage:    memData(s.MemoryStats.SwapUsage),
			KernelUsage:  memData(s.MemoryStats.KernelUsage),
			UseHierarchy: s.MemoryStats.UseHierarchy,
			Stats:        s.MemoryStats.Stats,
		},
		PidsStats: &agentpb.PidsStats{Current: s.PidsStats.Current, Limit: s.PidsStats.Limit},
		BlkioStats: &agentpb.BlkioStats{
			IoServiceBytesRecursive: blkio(s.BlkioStats.IoServiceBytesRecursive),
			IoServicedRecursive:     blkio(s.BlkioStats.IoServicedRecursive),
			IoQueuedRecursive:       blkio(s.BlkioStats.IoQueuedRecursive),
			IoServiceTimeRecursive:  blkio(s.BlkioStats.IoServiceTimeRecursive),
			IoWaitTimeRecursive:     blkio(s.BlkioStats.IoWaitTimeRecursive),
			IoMergedRecursive:       blkio(s.BlkioStats.IoMergedRecursive),
			IoTimeRecursive:         blkio(s.BlkioStats.IoTimeRecursive),
			SectorsRecursive:        blkio(s.BlkioStats.SectorsRecursive),
		},
	}
	if len(s.HugetlbStats) > 0 {
		out.HugetlbStats = make(map[string]*agentpb.HugetlbStats, len(s.HugetlbStats))
		for k, v := range s.HugetlbStats {
			out.HugetlbStats[k] = &agentpb.HugetlbStats{Usage: v.Usage, MaxUsage: v.MaxUsage, Failcnt: v.Failcnt}
		}
	}
	return out
}

func memData(m cgroups.MemoryData) *agentpb.MemoryData {
	return &agentpb.MemoryData{Usage: m.Usage, MaxUsage: m.MaxUsage, Failcnt: m.Failcnt, Limit: m.Limit}
}

func blkio(in []cgroups.BlkioStatEntry) []*agentpb.BlkioStatsEntry {
	out := make([]*agentpb.BlkioStatsEntry, 0, len(in))
	for _, e := range in {
		out = append(out, &agentpb.BlkioStatsEntry{Major: e.Major, Minor: e.Minor, Op: e.Op, Value: e.Value})
	}
	return out
}
