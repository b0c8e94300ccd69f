//go:build katacompat

package policy_test

// The benchmarks against Kata's genpolicy rules (ci/kata-compat.sh);
// the helpers and the rest are in bench_test.go.

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/policy/input"
)

// BenchmarkDecisionCreateContainer measures Policy.Evaluate of the
// sandbox's CreateContainerRequest (allowed, with ops) against the
// genpolicy-scale policy, input already encoded as a generic document (the
// offline path, cocoonctl policy eval).
func BenchmarkDecisionCreateContainer(b *testing.B) {
	text, req := genpolicyScale(b)
	p := load(b, text)
	in := input.Encode(req)
	ctx := context.Background()
	if d, err := p.Evaluate(ctx, "CreateContainerRequest", in); err != nil || !d.Allowed {
		b.Fatalf("setup: request not allowed: %v", err)
	}
	measure(b, func() {
		if d, err := p.Evaluate(ctx, "CreateContainerRequest", in); err != nil || !d.Allowed {
			b.Fatal(err)
		}
	})
}

// BenchmarkGateCreateContainer is what the server pays per request: the
// gate turns the protobuf request into the policy input, decides it
// against the genpolicy-scale policy, computes the state the ops lead to
// and, here, discards it (the operation "failed").
func BenchmarkGateCreateContainer(b *testing.B) {
	text, req := genpolicyScale(b)
	e := policy.NewEngine(load(b, text), nil, nil)
	ctx := context.Background()
	finish, err := e.Gate(ctx, "CreateContainer", req)
	if err != nil || finish == nil {
		b.Fatalf("setup: request not allowed with ops: %v", err)
	}
	finish(errOpFailed)
	measure(b, func() {
		finish, err := e.Gate(ctx, "CreateContainer", req)
		if err != nil {
			b.Fatal(err)
		}
		finish(errOpFailed)
	})
}

// BenchmarkGateCreateContainerLogged is the gate as the agent runs it by
// default, appending the decision and the discard to the decision log.
func BenchmarkGateCreateContainerLogged(b *testing.B) {
	text, req := genpolicyScale(b)
	dl, err := decisionlog.Open(filepath.Join(b.TempDir(), "decisions.log"), decisionlog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer dl.Close()
	e := policy.NewEngine(load(b, text), dl, nil)
	ctx := context.Background()
	measure(b, func() {
		finish, err := e.Gate(ctx, "CreateContainer", req)
		if err != nil || finish == nil {
			b.Fatal(err)
		}
		finish(errOpFailed)
	})
}

// BenchmarkInputValue is the gate's input conversion alone: the
// CreateContainerRequest straight to an OPA value.
func BenchmarkInputValue(b *testing.B) {
	_, req := genpolicyScale(b)
	var vs input.Values
	measure(b, func() {
		if _, err := vs.ForRequest(req); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkInputGeneric is the conversion the gate used to do: the generic
// document, then OPA's conversion of it.
func BenchmarkInputGeneric(b *testing.B) {
	_, req := genpolicyScale(b)
	measure(b, func() {
		if _, err := ast.InterfaceToValue(input.Encode(req)); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkDecisionSmallPolicy is the same request against coco-default.
func BenchmarkDecisionSmallPolicy(b *testing.B) {
	_, req := genpolicyScale(b)
	e := policy.NewEngine(load(b, builtin(b, policy.CocoDefault)), nil, nil)
	ctx := context.Background()
	measure(b, func() {
		if _, err := e.Gate(ctx, "CreateContainer", req); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkEngineHeap reports the heap a loaded genpolicy-scale engine holds
// after its CreateContainer query is prepared.
func BenchmarkEngineHeap(b *testing.B) {
	text, req := genpolicyScale(b)
	in := input.Encode(req)
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
