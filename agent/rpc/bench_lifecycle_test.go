package rpc_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// BenchmarkContainerLifecycle is CreateContainer + StartContainer +
// WaitProcess + RemoveContainer of /bin/true over the real agent, with the
// time of each rpc reported separately.
func BenchmarkContainerLifecycle(b *testing.B) {
	a := startAgentB(b)
	root := a.rootfsB(b, "bench")
	ctx := b.Context()
	var phase [4]time.Duration
	timed := func(k int, f func() error) {
		t0 := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		phase[k] += time.Since(t0)
	}
	i := 0
	for b.Loop() {
		cid := fmt.Sprintf("bench-%d", i)
		i++
		timed(0, func() error {
			_, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: cid, OCI: spec(root, "true")})
			return err
		})
		timed(1, func() error {
			_, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: cid})
			return err
		})
		timed(2, func() error {
			r, err := a.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: cid})
			if err == nil && r.Status != 0 {
				err = fmt.Errorf("exit status %d", r.Status)
			}
			return err
		})
		timed(3, func() error {
			_, err := a.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: cid})
			return err
		})
	}
	for k, name := range []string{"create", "start", "wait", "remove"} {
		b.ReportMetric(float64(phase[k].Microseconds())/1e3/float64(i), "ms-"+name+"/op")
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
