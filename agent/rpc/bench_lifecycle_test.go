package rpc_test

import (
	"fmt"
	"testing"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// BenchmarkContainerLifecycle is CreateContainer + StartContainer +
// WaitProcess + RemoveContainer of /bin/true over the real agent.
func BenchmarkContainerLifecycle(b *testing.B) {
	a := startAgentB(b)
	root := a.rootfsB(b, "bench")
	ctx := b.Context()
	i := 0
	for b.Loop() {
		cid := fmt.Sprintf("bench-%d", i)
		i++
		if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: cid, OCI: spec(root, "true")}); err != nil {
			b.Fatal(err)
		}
		if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: cid}); err != nil {
			b.Fatal(err)
		}
		if r, err := a.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: cid}); err != nil || r.Status != 0 {
			b.Fatal(r, err)
		}
		if _, err := a.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: cid}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadStdout measures ReadStdout throughput with 32 KiB reads of a
// container writing zeros as fast as it can.
func BenchmarkReadStdout(b *testing.B) {
	a := startAgentB(b)
	root := a.rootfsB(b, "reader")
	ctx := b.Context()
	if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "reader", OCI: spec(root, "cat", "/dev/zero")}); err != nil {
		b.Fatal(err)
	}
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "reader"}); err != nil {
		b.Fatal(err)
	}
	var n int64
	req := &agentpb.ReadStreamRequest{ContainerId: "reader", Len: 32 << 10}
	for b.Loop() {
		r, err := a.ReadStdout(ctx, req)
		if err != nil || len(r.Data) == 0 {
			b.Fatal(err)
		}
		n += int64(len(r.Data))
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds()/1e6, "MB/s")
}
