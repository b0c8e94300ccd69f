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
// its "agent serving" console line (agent-since-start-ms: from the start of
// PID 1, here the stage-1 init that execs the agent, until serving;
// guest-uptime-ms: the guest's boot-time clock then).
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
		// The line may still be on its way through the guest's serial
		// driver when the agent has answered.
		rec, err := v.WaitRecord(ctx, "agent serving")
		group, _ := rec["startup"].(map[string]any)
		if group == nil {
			b.Fatalf("no startup timing on the agent serving line (%v):\n%s", err, v.Console().Tail(20))
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
	reportStartup(b, startup)
}

// BenchmarkBootInitrdToAgentServing boots the whole guest tree as an
// initramfs (Kata's initrd mode: the kernel executes the agent as /init, no
// stage 1) until the agent logs "agent serving" on the console, and reports
// the agent's startup timings from that line: here since-start is exactly
// the exec of init until serving.
//
//	go test -run '^$' -bench BootInitrdToAgentServing -benchtime 3x ./ci/e2e/
func BenchmarkBootInitrdToAgentServing(b *testing.B) {
	a := artifacts(b)
	startup := map[string]float64{}
	for i := 0; i < b.N; i++ {
		v, err := Boot(context.Background(), a, VMConfig{Name: "bench-initrd-" + strconv.Itoa(i), Initrd: a.FullInitrd, NoNet: true})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), bootBound)
		rec, err := v.WaitRecord(ctx, "agent serving")
		cancel()
		b.StopTimer()
		v.Kill()
		group, _ := rec["startup"].(map[string]any)
		if group == nil {
			b.Fatalf("no agent serving line with startup timings (%v):\n%s", err, v.Console().Tail(20))
		}
		for k, x := range group {
			f, _ := x.(float64)
			startup[k] += f / float64(b.N)
		}
		b.StartTimer()
	}
	reportStartup(b, startup)
}

// reportStartup reports the means of the agent's startup group: one metric
// per phase, and the guest's boot-time clock when the agent served.
func reportStartup(b *testing.B, startup map[string]float64) {
	for k, mean := range startup {
		if k == "uptime_ms" {
			b.ReportMetric(mean, "guest-uptime-ms")
			continue
		}
		b.ReportMetric(mean, "agent-"+strings.ReplaceAll(strings.TrimSuffix(k, "_ms"), "_", "-")+"-ms")
	}
}
