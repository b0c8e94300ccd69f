package container

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/internal/procnet"
)

// Update applies new cgroup limits. Only the limits the request sets change;
// device rules are left as they are (the runtime sends none on update).
func (c *Container) Update(ctx context.Context, r *specs.LinuxResources) error {
	cg, err := specconv.CreateCgroupConfig(&specconv.CreateOpts{
		CgroupName: c.id,
		Spec:       &specs.Spec{Linux: &specs.Linux{Resources: r, CgroupsPath: c.spec.Linux.CgroupsPath}},
	}, nil)
	if err != nil {
		return errdefs.ErrInvalidArgument.WithMessage("resources: " + err.Error())
	}
	cfg := c.lc.Config()
	cur, nr := cfg.Cgroups.Resources, cg.Resources
	setIf(&cur.Memory, nr.Memory)
	setIf(&cur.MemoryReservation, nr.MemoryReservation)
	setIf(&cur.MemorySwap, nr.MemorySwap)
	setIf(&cur.CpuShares, nr.CpuShares)
	setIf(&cur.CpuQuota, nr.CpuQuota)
	setIf(&cur.CpuPeriod, nr.CpuPeriod)
	setIf(&cur.CpuRtRuntime, nr.CpuRtRuntime)
	setIf(&cur.CpuRtPeriod, nr.CpuRtPeriod)
	setIf(&cur.CpusetCpus, nr.CpusetCpus)
	setIf(&cur.CpusetMems, nr.CpusetMems)
	setIf(&cur.BlkioWeight, nr.BlkioWeight)
	setIf(&cur.BlkioLeafWeight, nr.BlkioLeafWeight)
	setIf(&cur.CpuWeight, nr.CpuWeight)
	if nr.PidsLimit != nil {
		cur.PidsLimit = nr.PidsLimit
	}
	if nr.MemorySwappiness != nil {
		cur.MemorySwappiness = nr.MemorySwappiness
	}
	if len(nr.HugetlbLimit) > 0 {
		cur.HugetlbLimit = nr.HugetlbLimit
	}
	if len(nr.BlkioWeightDevice) > 0 {
		cur.BlkioWeightDevice = nr.BlkioWeightDevice
	}
	for _, t := range []struct {
		dst *[]*cgroups.ThrottleDevice
		src []*cgroups.ThrottleDevice
	}{
		{&cur.BlkioThrottleReadBpsDevice, nr.BlkioThrottleReadBpsDevice},
		{&cur.BlkioThrottleWriteBpsDevice, nr.BlkioThrottleWriteBpsDevice},
		{&cur.BlkioThrottleReadIOPSDevice, nr.BlkioThrottleReadIOPSDevice},
		{&cur.BlkioThrottleWriteIOPSDevice, nr.BlkioThrottleWriteIOPSDevice},
	} {
		if len(t.src) > 0 {
			*t.dst = t.src
		}
	}
	if err := c.lc.Set(cfg); err != nil {
		return fmt.Errorf("update %q: %w", c.id, err)
	}
	return nil
}

func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// Stats are a container's cgroup statistics and the counters of the
// network devices in its network namespace.
type Stats struct {
	Cgroup  *cgroups.Stats
	Network []NetworkStats
}

// NetworkStats are one network device's counters from /proc/<pid>/net/dev.
type NetworkStats struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// Stats returns the container's cgroup statistics and the network counters
// of its network namespace (the sandbox's).
func (c *Container) Stats(ctx context.Context) (*Stats, error) {
	st, err := c.lc.Stats()
	if err != nil {
		return nil, fmt.Errorf("stats of %q: %w", c.id, err)
	}
	out := &Stats{Cgroup: st.CgroupStats}
	if !c.init.Exited() {
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", c.init.pid)); err == nil {
			out.Network = ParseNetDev(data)
		}
	}
	return out, nil
}

// ParseNetDev returns the counters of /proc/<pid>/net/dev that container
// stats report, without the loopback interface, as in Kata.
func ParseNetDev(data []byte) []NetworkStats {
	var out []NetworkStats
	for _, d := range procnet.ParseDev(data) {
		if d.Name == "lo" {
			continue
		}
		c := d.Counters
		out = append(out, NetworkStats{
			Name: d.Name, RxBytes: c[procnet.RxBytes], RxPackets: c[procnet.RxPackets], RxErrors: c[procnet.RxErrors], RxDropped: c[procnet.RxDropped],
			TxBytes: c[procnet.TxBytes], TxPackets: c[procnet.TxPackets], TxErrors: c[procnet.TxErrors], TxDropped: c[procnet.TxDropped],
		})
	}
	return out
}
