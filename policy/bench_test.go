package policy_test

import (
	"context"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/policy"
)

// genpolicyScale is Kata's rules.rego (1,800+ lines) with policy data for a
// three-container pod: each container entry is built from a recorded
// CreateContainerRequest of Kata's test cases in the shape genpolicy emits.
func genpolicyScale(b *testing.B) (string, map[string]any) {
	cases := loadCases(b, "createcontainer_sysctls")
	req := kataInput(b, cases[0])
	var containers []any
	for i := 0; i < 3; i++ {
		containers = append(containers, map[string]any{
			"OCI":           req["OCI"],
			"storages":      req["storages"],
			"sandbox_pidns": false,
			"exec_commands": []any{},
			"devices":       []any{},
		})
	}
	return genpolicyText(b, containers), req
}

// BenchmarkDecisionCreateContainer measures one CreateContainerRequest
// decision (input already encoded, as the gate has it) and reports p50/p99.
func BenchmarkDecisionCreateContainer(b *testing.B) {
	text, in := genpolicyScale(b)
	p := load(b, text)
	ctx := context.Background()
	if _, err := p.Evaluate(ctx, "CreateContainerRequest", in); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := p.Evaluate(ctx, "CreateContainerRequest", in); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkDecisionSmallPolicy is the same request against coco-default.
func BenchmarkDecisionSmallPolicy(b *testing.B) {
	_, in := genpolicyScale(b)
	p := load(b, builtin(b, policy.CocoDefault))
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Evaluate(ctx, "CreateContainerRequest", in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEngineHeap reports the heap a loaded genpolicy-scale engine holds
// after its CreateContainer query is prepared.
func BenchmarkEngineHeap(b *testing.B) {
	text, in := genpolicyScale(b)
	var before, after runtime.MemStats
	for i := 0; i < b.N; i++ {
		runtime.GC()
		runtime.ReadMemStats(&before)
		p := load(b, text)
		if _, err := p.Evaluate(context.Background(), "CreateContainerRequest", in); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(p)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
}
