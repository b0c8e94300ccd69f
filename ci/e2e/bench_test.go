package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkBootToAgentReady measures QEMU start (TCG, stock kernel via PVH,
// stage-1 initrd, dm-verity root) until the agent answers Health.Check
// through AF_VSOCK, and reports the agent's resident memory after start and
// its own share of the boot, means over the boots, from the startup group of
// its "agent serving" console line (agent-since-exec-ms: exec of the agent as
// init until serving; guest-uptime-ms: the guest's boot-time clock then).
//
//	go test -run '^$' -bench BootToAgentReady -benchtime 3x ./ci/e2e/
func BenchmarkBootToAgentReady(b *testing.B) {
	a := artifacts(b)
	var rss, anon int64
	startup := map[string]float64{}
	for i := 0; i < b.N; i++ {
		v, err := Boot(context.Background(), a, VMConfig{
			Name: "bench-" + strconv.Itoa(i), Initrd: a.Initrd, Disk: a.Disk,
			Extra: []string{a.KernelParams},
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), bootBound)
		c, err := v.ConnectAgent(ctx)
		if err != nil {
			cancel()
			v.Kill()
			b.Fatal(err)
		}
		b.StopTimer()
		st, err := v.Status(ctx)
		if err == nil {
			rss, anon = st.RSSKiB, st.AnonKiB
		}
		rec, ok := v.Console().Find("agent serving")
		group, _ := rec["startup"].(map[string]any)
		if !ok || group == nil {
			b.Fatalf("no startup timing on the agent serving line:\n%s", v.Console().Tail(20))
		}
		for k, x := range group {
			f, _ := x.(float64)
			startup[k] += f / float64(b.N)
		}
		c.Close()
		cancel()
		v.Kill() // returns once QEMU has exited
		b.StartTimer()
	}
	b.ReportMetric(float64(rss), "agent-RSS-KiB")
	b.ReportMetric(float64(anon), "agent-anon-KiB")
	for k, mean := range startup {
		name := strings.ReplaceAll(strings.TrimSuffix(k, "_ms"), "_", "-")
		if k == "uptime_ms" {
			b.ReportMetric(mean, "guest-uptime-ms")
			continue
		}
		b.ReportMetric(mean, "agent-"+name+"-ms")
	}
}
