package container

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
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

// ParseNetDev parses /proc/<pid>/net/dev: two header lines, then
// "iface: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed
// multicast tx_bytes tx_packets tx_errs tx_drop ...". Malformed lines are
// skipped; the loopback interface is left out, as in Kata.
func ParseNetDev(data []byte) []NetworkStats {
	var out []NetworkStats
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if name == "" || name == "lo" || len(f) < 12 {
			continue
		}
		var v [12]uint64
		bad := false
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				bad = true
				break
			}
			v[i] = n
		}
		if bad {
			continue
		}
		out = append(out, NetworkStats{
			Name: name, RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11],
		})
	}
	return out
}
