package rpc_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// BenchmarkReadStdoutSealed reads a container's log-like output (80-byte
// lines) 32 KiB at a time, as the runtime does, from two agents side by
// side: one plain (allow-all, no cocoon.toml) and one sealing its logs
// (coco-default, logs sealed). The loop alternates one read from each, so
// both see the same machine load. MB/s is plaintext delivered per second
// of reading: sealed output is opened afterwards (outside the time) and
// only what its records carry counts; records dropped because the reader
// fell behind the writer do not. sealed/plain is the ratio of the two.
// A sealed read carries at most 1/wire-plain of its bytes as plaintext,
// so when both sides are limited by the read path rather than by the
// writer, sealed/plain tends to the plain read path's cost per call over
// the sealed one's, times 1/wire-plain (0.745 with base64 records).
func BenchmarkReadStdoutSealed(b *testing.B) {
	line := "2025-01-01T00:00:00Z INFO request served path=/api/v1/items status=200 ms=3"
	args := []string{"yes", line}
	plain := startAgentB(b)
	startReader(b, plain, k8sSpec(plain.rootfsB(b, "reader"), "reader", args...))
	o := newOwner(b)
	sealed := startObserved(b, o, "")
	startReader(b, sealed.agent, k8sSpec(sealed.rootfsB(b, "reader"), "reader", args...))

	ctx := b.Context()
	req := &agentpb.ReadStreamRequest{ContainerId: "reader", Len: readSize}
	var pn, wire int64
	var pt, st time.Duration
	var all bytes.Buffer
	for b.Loop() {
		t0 := time.Now()
		r, err := plain.ReadStdout(ctx, req)
		if err != nil || len(r.Data) == 0 {
			b.Fatal(err)
		}
		t1 := time.Now()
		sr, err := sealed.ReadStdout(ctx, req)
		if err != nil || len(sr.Data) == 0 {
			b.Fatal(err)
		}
		pt += t1.Sub(t0)
		st += time.Since(t1)
		pn += int64(len(r.Data))
		wire += int64(len(sr.Data))
		all.Write(sr.Data)
	}
	opened, marks, err := sealedlog.ReadAll(o.seal, all.Bytes())
	if err != nil {
		b.Fatal(err)
	}
	var sn int64
	for _, p := range opened {
		sn += int64(len(p))
	}
	missing := 0
	for _, m := range marks {
		if m.Kind == sealedlog.Missing {
			missing += int(m.Last - m.First + 1)
		}
	}
	plainMBs, sealedMBs := float64(pn)/pt.Seconds()/1e6, float64(sn)/st.Seconds()/1e6
	b.ReportMetric(sealedMBs, "MB/s")
	b.ReportMetric(plainMBs, "plain-MB/s")
	b.ReportMetric(sealedMBs/plainMBs, "sealed/plain")
	b.ReportMetric(float64(wire)/float64(max(sn, 1)), "wire/plain")
	b.ReportMetric(float64(missing), "records-dropped")
	// Below 32 the plain reads found the pipe short of a full read: the
	// writer, not the read path, set their pace.
	b.ReportMetric(float64(pn)/float64(b.N)/1024, "plain-KiB/read")
}

func startReader(b *testing.B, a *agent, s *agentpb.Spec) {
	ctx := b.Context()
	if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "reader", OCI: s}); err != nil {
		b.Fatal(err)
	}
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "reader"}); err != nil {
		b.Fatal(err)
	}
}
