package e2e

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkBootToAgentReady measures QEMU start (TCG, stock kernel via PVH,
// stage-1 initrd, dm-verity root) until the agent answers Health.Check
// through AF_VSOCK, and reports the agent's resident memory after start.
//
//	go test -run '^$' -bench BootToAgentReady -benchtime 3x ./ci/e2e/
func BenchmarkBootToAgentReady(b *testing.B) {
	a := artifacts(b)
	var rss, anon int64
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
		c.Close()
		cancel()
		v.Kill() // returns once QEMU has exited
		b.StartTimer()
	}
	b.ReportMetric(float64(rss), "agent-RSS-KiB")
	b.ReportMetric(float64(anon), "agent-anon-KiB")
}
