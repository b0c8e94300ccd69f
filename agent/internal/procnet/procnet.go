// Package procnet reads /proc/<pid>/net/dev, the kernel's per-interface
// counters, for both of their users: a container's stats (StatsContainer)
// and the guest's metrics (GetMetrics).
package procnet

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// Fields names the counters of one line, in the kernel's order: receive
// then transmit (net/core/net-procfs.c, dev_seq_printf_stats).
func Fields() [16]string {
	return [16]string{
		"recv_bytes", "recv_packets", "recv_errs", "recv_drop", "recv_fifo", "recv_frame", "recv_compressed", "recv_multicast",
		"sent_bytes", "sent_packets", "sent_errs", "sent_drop", "sent_fifo", "sent_colls", "sent_carrier", "sent_compressed",
	}
}

// Indexes into Device.Counters of the counters container stats report.
const (
	RxBytes, RxPackets, RxErrors, RxDropped = 0, 1, 2, 3
	TxBytes, TxPackets, TxErrors, TxDropped = 8, 9, 10, 11
)

// Device is one interface's line.
type Device struct {
	Name     string
	Counters [16]uint64
}

// ParseDev parses the file: two header lines, then "name: counters...". A
// line that is not an interface with 16 numeric counters is skipped (the
// guest's own kernel writes this file; a short or odd line means a kernel
// this parser does not know, not an attack).
func ParseDev(data []byte) []Device {
	var out []Device
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.Contains(name, "|") {
			continue
		}
		d := Device{Name: strings.TrimSpace(name)}
		f := strings.Fields(rest)
		if d.Name == "" || len(f) < len(d.Counters) {
			continue
		}
		ok = true
		for i := range d.Counters {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				ok = false
				break
			}
			d.Counters[i] = n
		}
		if ok {
			out = append(out, d)
		}
	}
	return out
}
