package rpc_test

import (
	"fmt"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/config"
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
// container writing zeros as fast as it can (busybox cat uses sendfile, so
// the writer is never the bottleneck), with the default pipe and with
// agent.container_pipe_size at its maximum.
func BenchmarkReadStdout(b *testing.B) {
	for _, pipe := range []int32{0, 1 << 20} {
		b.Run(fmt.Sprintf("pipe=%d", pipe), func(b *testing.B) {
			a := startAgentB(b, func(c *config.Config) { c.ContainerPipeSize = pipe })
			root := a.rootfsB(b, "reader")
			ctx := b.Context()
			if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "reader", OCI: spec(root, "cat", "/dev/zero")}); err != nil {
				b.Fatal(err)
			}
			if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "reader"}); err != nil {
				b.Fatal(err)
			}
			var n int64
			req := &agentpb.ReadStreamRequest{ContainerId: "reader", Len: readSize}
			b.ReportAllocs()
			for b.Loop() {
				r, err := a.ReadStdout(ctx, req)
				if err != nil || len(r.Data) == 0 {
					b.Fatal(err)
				}
				n += int64(len(r.Data))
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds()/1e6, "MB/s")
		})
	}
}
