package kbs_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/internal/attest/kbs"
)

func benchKBS(b *testing.B, o kbstest.Options) *kbstest.Server {
	o.Resources = map[string][]byte{"default/key/1": make([]byte, 32)}
	s, err := kbstest.New(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

// BenchmarkFirstResource is a cold start: new client (fresh TEE key),
// auth + attest + first resource, against the in-process test KBS with the
// sample attester (hardware quote latency not included).
func BenchmarkFirstResource(b *testing.B) {
	s := benchKBS(b, kbstest.Options{})
	a, _ := attest.New(attest.Options{Root: b.TempDir(), AllowSample: true})
	benchFirstResource(b, s.URL, a)
}

// BenchmarkFirstResourceSNP is the same with SNP evidence from go-sev-guest's
// fake device (signing with the test key) and full chain verification in the KBS.
func BenchmarkFirstResourceSNP(b *testing.B) {
	fake, err := kbstest.NewFakeSNP(nil)
	if err != nil {
		b.Fatal(err)
	}
	s := benchKBS(b, kbstest.Options{SNPRoot: fake.ARK()})
	a, _ := attest.New(attest.Options{Root: b.TempDir(), SEVDevice: fake})
	benchFirstResource(b, s.URL, a)
}

// benchFirstResource times a new client's auth, attest and first resource.
func benchFirstResource(b *testing.B, url string, a attest.Attester) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, err := kbs.New(kbs.Options{Config: kbs.Config{URL: url}, Attester: a, Backoff: time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Resolve(ctx, "kbs:///default/key/1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCachedResource is a resource fetch within a live session.
func BenchmarkCachedResource(b *testing.B) {
	s := benchKBS(b, kbstest.Options{})
	a, _ := attest.New(attest.Options{Root: b.TempDir(), AllowSample: true})
	c, err := kbs.New(kbs.Options{Config: kbs.Config{URL: s.URL}, Attester: a})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Resolve(ctx, "kbs:///default/key/1"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Resolve(ctx, "kbs:///default/key/1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientHeap reports the live heap one attested client retains
// (key, token, cookie jar, HTTP transport with its idle connection).
func BenchmarkClientHeap(b *testing.B) {
	s := benchKBS(b, kbstest.Options{})
	a, _ := attest.New(attest.Options{Root: b.TempDir(), AllowSample: true})
	ctx := context.Background()
	var total uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c, err := kbs.New(kbs.Options{Config: kbs.Config{URL: s.URL}, Attester: a})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Resolve(ctx, "kbs:///default/key/1"); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		total += after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
		runtime.KeepAlive(c)
	}
	b.ReportMetric(float64(total)/float64(b.N), "live-B/client")
}
