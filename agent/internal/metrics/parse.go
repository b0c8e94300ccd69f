package metrics

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/cocoon-tee/cocoon/agent/internal/procnet"
)

// maxLines bounds every procfs file read.
const maxLines = 1 << 16

// Sample is one labelled value parsed from procfs.
type Sample struct {
	Labels []string
	Value  float64
}

func lines(r io.Reader, fn func(string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		if n++; n > maxLines {
			return fmt.Errorf("more than %d lines", maxLines)
		}
		if err := fn(sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// ParseKeyValues reads "Key: value [kB]" (meminfo, status) or "key value"
// (vmstat, io) lines; kB values become bytes. Lines that are not numeric
// are skipped, as status has text fields.
func ParseKeyValues(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	err := lines(r, func(l string) error {
		k, rest, ok := strings.Cut(l, ":")
		if !ok {
			k, rest, ok = strings.Cut(l, " ")
		}
		if !ok {
			return nil
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil
		}
		if len(f) > 1 && f[1] == "kB" {
			v *= 1024
		}
		out[strings.TrimSpace(k)] = v
		return nil
	})
	return out, err
}

// ParseLoadavg reads /proc/loadavg: "0.00 0.01 0.05 1/123 4567".
func ParseLoadavg(s string) (load [3]float64, cur, max float64, err error) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return load, 0, 0, fmt.Errorf("malformed loadavg %q", s)
	}
	for i := 0; i < 3; i++ {
		if load[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return load, 0, 0, fmt.Errorf("malformed loadavg %q", s)
		}
	}
	a, b, ok := strings.Cut(f[3], "/")
	if !ok {
		return load, 0, 0, fmt.Errorf("malformed loadavg %q", s)
	}
	if cur, err = strconv.ParseFloat(a, 64); err != nil {
		return load, 0, 0, fmt.Errorf("malformed loadavg %q", s)
	}
	if max, err = strconv.ParseFloat(b, 64); err != nil {
		return load, 0, 0, fmt.Errorf("malformed loadavg %q", s)
	}
	return load, cur, max, nil
}

// cpuFields are /proc/stat's cpu columns, in order.
func cpuFields() []string {
	return []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"}
}

// ParseCPUStat reads the cpu lines of /proc/stat into {cpu, item} samples
// in seconds; the aggregate line is cpu "total" as in Kata.
func ParseCPUStat(r io.Reader, ticks float64) ([]Sample, error) {
	var out []Sample
	names := cpuFields()
	err := lines(r, func(l string) error {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.HasPrefix(f[0], "cpu") {
			return nil
		}
		cpu := strings.TrimPrefix(f[0], "cpu")
		if cpu == "" {
			cpu = "total"
		} else if _, err := strconv.Atoi(cpu); err != nil {
			return nil
		}
		for i, v := range f[1:] {
			if i >= len(names) {
				break
			}
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("malformed stat line %q", l)
			}
			out = append(out, Sample{[]string{cpu, names[i]}, x / ticks})
		}
		return nil
	})
	return out, err
}

func diskFields() []string {
	return []string{"reads", "merged", "sectors_read", "time_reading", "writes", "writes_merged",
		"sectors_written", "time_writing", "in_progress", "time_in_progress", "weighted_time_in_progress",
		"discards", "discards_merged", "sectors_discarded", "time_discarding", "flushes", "time_flushing"}
}

// ParseDiskstats reads /proc/diskstats into {disk, item} samples.
func ParseDiskstats(r io.Reader) ([]Sample, error) {
	var out []Sample
	names := diskFields()
	err := lines(r, func(l string) error {
		f := strings.Fields(l)
		if len(f) < 4 {
			return nil
		}
		for i, v := range f[3:] {
			if i >= len(names) {
				break
			}
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("malformed diskstats line %q", l)
			}
			out = append(out, Sample{[]string{f[2], names[i]}, x})
		}
		return nil
	})
	return out, err
}

// ParseNetdev reads /proc/net/dev into {interface, item} samples.
func ParseNetdev(r io.Reader) ([]Sample, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	names := procnet.Fields()
	var out []Sample
	for _, d := range procnet.ParseDev(data) {
		for i, v := range d.Counters {
			out = append(out, Sample{[]string{d.Name, names[i]}, float64(v)})
		}
	}
	return out, nil
}

// MeminfoItem turns a /proc/meminfo key into the item label Kata reports
// ("MemTotal" → "mem_total", "Active(anon)" → "active_anon").
func MeminfoItem(k string) string {
	switch {
	case strings.HasPrefix(k, "HugePages_"):
		return "hugepages_" + strings.ToLower(strings.TrimPrefix(k, "HugePages_"))
	case strings.HasPrefix(k, "DirectMap"):
		return "direct_map_" + strings.TrimPrefix(k, "DirectMap")
	case k == "Percpu":
		return "per_cpu"
	case strings.HasSuffix(k, "HugePages"):
		return snake(strings.TrimSuffix(k, "HugePages")) + "_hugepages"
	}
	return snake(k)
}

func snake(k string) string {
	k = strings.NewReplacer("(", "_", ")", "").Replace(k)
	rs := []rune(k)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 && rs[i-1] != '_' {
			prev := rs[i-1]
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
