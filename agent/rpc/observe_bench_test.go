package rpc_test

import (
	"bytes"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// BenchmarkReadStdoutSealed reads a container's log-like output (80-byte
// lines) 32 KiB at a time, as the runtime does, plain (allow-all, no
// cocoon.toml) and sealed (coco-default, logs sealed), in one run. MB/s is
// plaintext delivered per second of reading: for sealed output the
// records are opened afterwards (outside the time) and only what they
// carry counts; records dropped because the reader fell behind the
// writer do not.
func BenchmarkReadStdoutSealed(b *testing.B) {
	line := "2025-01-01T00:00:00Z INFO request served path=/api/v1/items status=200 ms=3"
	args := []string{"yes", line}
	b.Run("plain", func(b *testing.B) {
		a := startAgentB(b)
		benchRead(b, a, k8sSpec(a.rootfsB(b, "reader"), "reader", args...), nil)
	})
	b.Run("sealed", func(b *testing.B) {
		o := newOwner(b)
		a := startObserved(b, o, "")
		benchRead(b, a.agent, k8sSpec(a.rootfsB(b, "reader"), "reader", args...), &o)
	})
}

func benchRead(b *testing.B, a *agent, s *agentpb.Spec, o *owner) {
	ctx := b.Context()
	if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "reader", OCI: s}); err != nil {
		b.Fatal(err)
	}
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "reader"}); err != nil {
		b.Fatal(err)
	}
	req := &agentpb.ReadStreamRequest{ContainerId: "reader", Len: readSize}
	var n int64
	var all bytes.Buffer
	for b.Loop() {
		r, err := a.ReadStdout(ctx, req)
		if err != nil || len(r.Data) == 0 {
			b.Fatal(err)
		}
		n += int64(len(r.Data))
		if o != nil {
			all.Write(r.Data)
		}
	}
	secs := b.Elapsed().Seconds()
	if o != nil {
		wire := n
		plain, marks, err := sealedlog.ReadAll(o.seal, all.Bytes())
		if err != nil {
			b.Fatal(err)
		}
		n = 0
		for _, p := range plain {
			n += int64(len(p))
		}
		missing := 0
		for _, m := range marks {
			if m.Kind == sealedlog.Missing {
				missing += int(m.Last - m.First + 1)
			}
		}
		b.ReportMetric(float64(wire)/float64(max(n, 1)), "wire/plain")
		b.ReportMetric(float64(missing), "records-dropped")
	}
	b.ReportMetric(float64(n)/secs/1e6, "MB/s")
}
