package system

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maxProbeAddrs bounds MemHotplugByProbe; each address is one memory block.
const maxProbeAddrs = 4096

var (
	cpuDir = regexp.MustCompile(`^cpu[0-9]+$`)
	memDir = regexp.MustCompile(`^memory[0-9]+$`)
)

// OnlineRequest is what OnlineCPUMem is asked: bring CPUs up to NbCPUs
// online (0: leave CPUs), and unless CPUOnly, every offline memory block.
type OnlineRequest struct {
	NbCPUs  uint32
	CPUOnly bool
}

// OnlineCPUMem onlines hot-plugged CPUs until nb_cpus are online (0 skips
// CPUs) and, unless cpu_only, every offline memory block. As in Kata the
// CPU count is re-read and retried, because the VMM may still be adding
// them; the wait flag is accepted for compatibility and ignored, as Kata
// ignores it.
func (g *Guest) OnlineCPUMem(ctx context.Context, req *OnlineRequest) error {
	if req == nil {
		return invalid("online cpu/mem request is null")
	}
	if req.NbCPUs > 0 {
		if err := g.onlineCPUs(ctx, int(req.NbCPUs)); err != nil {
			return fmt.Errorf("online cpus: %w", err)
		}
	}
	if !req.CPUOnly {
		if _, err := onlineAll(filepath.Join(g.o.Sysfs, "devices/system/memory"), memDir, -1); err != nil {
			return fmt.Errorf("online memory: %w", err)
		}
	}
	return nil
}

func (g *Guest) onlineCPUs(ctx context.Context, want int) error {
	if want > MaxCPUs {
		return invalid("nb_cpus %d more than %d", want, MaxCPUs)
	}
	have, err := g.onlineCPUCount()
	if err != nil {
		return err
	}
	for i := 0; have < want; i++ {
		if i == g.o.OnlineRetries {
			return fmt.Errorf("failed to online %d CPU(s) after %d retries (%d online)", want, i, have)
		}
		if _, err := onlineAll(filepath.Join(g.o.Sysfs, "devices/system/cpu"), cpuDir, want-have); err != nil {
			return err
		}
		if have, err = g.onlineCPUCount(); err != nil || have >= want {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(g.o.OnlineWait):
		}
	}
	return nil
}

func (g *Guest) onlineCPUCount() (int, error) {
	b, err := os.ReadFile(filepath.Join(g.o.Sysfs, "devices/system/cpu/online"))
	if err != nil {
		return 0, fmt.Errorf("online cpu count: %w", err)
	}
	return ParseCPUList(string(b))
}

// MaxCPUs bounds CPU lists and requests (the kernel's NR_CPUS ceiling).
const MaxCPUs = 8192

// ParseCPUList counts the CPUs in a list like "0-3,5,7-8".
func ParseCPUList(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n := 0
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 || a >= MaxCPUs {
			return 0, fmt.Errorf("invalid cpu list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b >= MaxCPUs {
				return 0, fmt.Errorf("invalid cpu list %q", s)
			}
		}
		n += b - a + 1
		if n > MaxCPUs {
			return 0, fmt.Errorf("cpu list %q names more than %d cpus", s, MaxCPUs)
		}
	}
	return n, nil
}

// onlineAll writes "1" to the online file of up to limit (all if < 0)
// offline entries matching pat under dir.
func onlineAll(dir string, pat *regexp.Regexp, limit int) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if !pat.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name(), "online")
		b, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(b)) != "0" {
			continue // cpu0 has no online file; others are online already
		}
		if err := os.WriteFile(p, []byte("1"), 0); err != nil {
			continue // the kernel may refuse a block (e.g. not removable); Kata goes on
		}
		n++
		if n == limit {
			break
		}
	}
	return n, nil
}

// MemHotplugByProbe tells the kernel about hot-added memory at each address.
func (g *Guest) MemHotplugByProbe(_ context.Context, addrs []uint64) error {
	if len(addrs) > maxProbeAddrs {
		return invalid("%d probe addresses, more than %d", len(addrs), maxProbeAddrs)
	}
	for _, a := range addrs {
		if err := os.WriteFile(g.probePath(), []byte(fmt.Sprintf("%#X", a)), 0); err != nil {
			return fmt.Errorf("probe memory at %#x: %w", a, err)
		}
	}
	return nil
}
