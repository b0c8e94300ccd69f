package procnet

import (
	"strings"
	"testing"
)

// The layout a Linux 6.x kernel writes (net/core/net-procfs.c).
const sample = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0: 1000 10 1 2 3 4 5 6 2000 20 3 4 7 8 9 10
  bad: x y
  short: 1 2 3
`

func TestParseDev(t *testing.T) {
	got := ParseDev([]byte(sample))
	if len(got) != 2 || got[0].Name != "lo" || got[1].Name != "eth0" {
		t.Fatalf("%+v", got)
	}
	e := got[1].Counters
	if e[RxBytes] != 1000 || e[RxDropped] != 2 || e[TxBytes] != 2000 || e[TxDropped] != 4 || e[15] != 10 || e[4] != 3 {
		t.Fatalf("%v", e)
	}
}

func FuzzParseDev(f *testing.F) {
	f.Add([]byte(sample))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range ParseDev(data) {
			if d.Name == "" || strings.ContainsAny(d.Name, ":|\n") {
				t.Fatalf("bad name %q", d.Name)
			}
		}
	})
}
