package rpc_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/internal/testutil/testgrant"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// BenchmarkReadStdoutSealed reads a container's log-like output (80-byte
// lines) 32 KiB at a time, as the runtime does, plain (allow-all, no
// cocoon.toml) and then sealed (coco-default, logs sealed), in one run.
// MB/s is plaintext delivered per second of reading: for sealed output the
// records are opened afterwards (outside the time) and only what they
// carry counts; records dropped because the reader fell behind the writer
// do not. The sealed run reports sealed/plain against the plain run just
// before it.
//
// The two run one after the other, each agent alone, rather than read by
// turns: a sealed stream's pump drains its writer (here an endless `yes`)
// whatever the reader does, which is the point of it, so while the sealed
// container exists it and the pump keep a core busy, and a plain run beside
// it would pay for that.
//
// A sealed read carries at most 1/wire-plain of its bytes as plaintext, so
// when the read path, not the writer, sets the pace, sealed/plain tends to
// that fraction (0.745 with base64 records) times the plain read path's
// cost per call over the sealed one's.
func BenchmarkReadStdoutSealed(b *testing.B) {
	line := "2025-01-01T00:00:00Z INFO request served path=/api/v1/items status=200 ms=3"
	args := []string{"yes", line}
	var plainMBs float64
	b.Run("plain", func(b *testing.B) {
		a := startAgentB(b)
		plainMBs = benchRead(b, a, k8sSpec(a.rootfsB(b, "reader"), "reader", args...), nil)
	})
	b.Run("sealed", func(b *testing.B) {
		o := testgrant.NewOwner(b)
		a := startObserved(b, o, "")
		mbs := benchRead(b, a.agent, k8sSpec(a.rootfsB(b, "reader"), "reader", args...), &o)
		if plainMBs > 0 {
			b.ReportMetric(mbs/plainMBs, "sealed/plain")
		}
	})
}

// benchRead reads the container's stdout for the benchmark's time and
// returns the plaintext MB/s, which it also reports.
func benchRead(b *testing.B, a *agent, s *agentpb.Spec, o *testgrant.Owner) float64 {
	ctx := b.Context()
	if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "reader", OCI: s}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if _, err := a.RemoveContainer(context.Background(), &agentpb.RemoveContainerRequest{ContainerId: "reader"}); err != nil {
			b.Error(err)
		}
	})
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "reader"}); err != nil {
		b.Fatal(err)
	}
	req := &agentpb.ReadStreamRequest{ContainerId: "reader", Len: readSize}
	var n, reads int64
	var all bytes.Buffer
	for b.Loop() {
		r, err := a.ReadStdout(ctx, req)
		if err != nil || len(r.Data) == 0 {
			b.Fatal(err)
		}
		n += int64(len(r.Data))
		reads++
		if o != nil {
			all.Write(r.Data)
		}
	}
	secs := b.Elapsed().Seconds()
	// Below 32 the reads found the pipe short of a full read: the writer,
	// not the read path, set their pace.
	b.ReportMetric(float64(n)/float64(reads)/1024, "KiB/read")
	if o != nil {
		wire := n
		plain, marks, err := sealedlog.ReadAll(o.Seal, all.Bytes())
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
	mbs := float64(n) / secs / 1e6
	b.ReportMetric(mbs, "MB/s")
	return mbs
}
