package policy_test

import (
	"context"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// latencies collects per-call durations and reports their p50 and p99,
// and the process CPU time per call: on a shared machine wall-clock
// percentiles include time spent waiting for a core, CPU time does not.
type latencies []time.Duration

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs op b.N times and reports latency percentiles and CPU per op.
func measure(b *testing.B, op func()) {
	lat := make(latencies, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU(b)
	for i := 0; i < b.N; i++ {
		start := time.Now()
		op()
		lat = append(lat, time.Since(start))
	}
	cpu = processCPU(b) - cpu
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
	lat.report(b)
}

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	b.ReportMetric(float64(l[len(l)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(l[len(l)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// readInputPolicy decides stream reads on the request's fields and the
// state, so its decisions are cached by the request itself.
const readInputPolicy = `package agent_policy
import rego.v1
default ReadStreamRequest := false
ReadStreamRequest if {
	input.container_id == "c1"
	not data.pstate.blocked
}
`

// benchGate measures the gate's cost for one request under text, with the
// decision log on when logged is set.
func benchGate(b *testing.B, text, method string, req proto.Message, logged bool) {
	var dl *decisionlog.Log
	if logged {
		var err error
		// On a tmpfs, as the agent keeps it (/run/cocoon).
		if dl, err = decisionlog.Open(filepath.Join(testenv.SmallTmpfs(b, "64m"), "decisions.log"), decisionlog.Options{}); err != nil {
			b.Fatal(err)
		}
		defer dl.Close()
	}
	e := policy.NewEngine(load(b, text), dl, nil)
	ctx := context.Background()
	measure(b, func() {
		if _, err := e.Gate(ctx, method, req); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkGateReadStdout is the per-read gate cost of a stream rpc (the
// runtime issues one per 32 KiB of output): under allow-all, whose rule
// reads no input; under a rule that reads the request and the state; and
// with the decision log on.
func BenchmarkGateReadStdout(b *testing.B) {
	req := &agentpb.ReadStreamRequest{ContainerId: "c1", ExecId: "c1", Len: 32 << 10}
	b.Run("allow-all", func(b *testing.B) { benchGate(b, builtin(b, policy.AllowAll), "ReadStdout", req, false) })
	b.Run("input", func(b *testing.B) { benchGate(b, readInputPolicy, "ReadStdout", req, false) })
	b.Run("logged", func(b *testing.B) { benchGate(b, builtin(b, policy.AllowAll), "ReadStdout", req, true) })
}

// BenchmarkGateWaitProcess is WaitProcess under coco-default.
func BenchmarkGateWaitProcess(b *testing.B) {
	req := &agentpb.WaitProcessRequest{ContainerId: "c1", ExecId: "e1"}
	benchGate(b, builtin(b, policy.CocoDefault), "WaitProcess", req, false)
}
