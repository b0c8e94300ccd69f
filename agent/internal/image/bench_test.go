package image

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/internal/image/layerstore"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

// Benchmarks pull from a registry through a counting proxy. ci/bench-image.sh
// sets COCOON_BENCH_REGISTRY (host:port) and COCOON_BENCH_IMAGE,
// COCOON_BENCH_IMAGE_ENC, COCOON_BENCH_IMAGE_SHARED (repo:tag) to a large
// image; without them the benchmarks build a small busybox image themselves.

type benchEnv struct {
	f      *fixture
	px     *testregistry.Proxy
	plain  string
	enc    string
	shared string
	keys   string
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	dir := b.TempDir()
	e := &benchEnv{}
	if reg := os.Getenv("COCOON_BENCH_REGISTRY"); reg != "" {
		r := &testregistry.Registry{Addr: reg}
		e.f = &fixture{t: b, dir: dir, reg: r, hosts: []string{reg}}
		e.plain, e.enc, e.shared = os.Getenv("COCOON_BENCH_IMAGE"), os.Getenv("COCOON_BENCH_IMAGE_ENC"), os.Getenv("COCOON_BENCH_IMAGE_SHARED")
		e.keys = os.Getenv("COCOON_BENCH_KEYS")
	} else {
		r := testregistry.Start(b)
		e.f = &fixture{t: b, dir: dir, reg: r, hosts: []string{r.Addr}}
		bb := testregistry.Build(b, filepath.Join(dir, "bb"), []string{"/bin/sh"}, busyboxLayer, testregistry.Files(map[string]string{"a": strings.Repeat("x", 1<<20)}))
		r.Push(b, bb, "bench:plain", nil)
		e.plain = "bench:plain"
		e.keys = filepath.Join(dir, "keys")
		_, pub := testregistry.RSAKeyPair(b, e.keys)
		r.Push(b, bb, "bench:enc", nil, "--encryption-key", "jwe:"+pub)
		e.enc = "bench:enc"
		r.Push(b, testregistry.Extend(b, bb, filepath.Join(dir, "shared"), testregistry.Files(map[string]string{"b": "y"})), "bench:shared", nil)
		e.shared = "bench:shared"
	}
	e.px = testregistry.NewProxy(b, e.f.reg)
	e.f.hosts = append(e.f.hosts, e.px.Addr)
	return e
}

func busyboxLayer(t testing.TB, rootfs string) { testenv.BusyboxRootfs(t, rootfs) }

// puller returns a puller over a fresh, empty store.
func (e *benchEnv) puller(b *testing.B, keys string) (*Puller, *layerstore.Store) {
	b.Helper()
	store, err := layerstore.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	e.f.store = store
	e.f.conf.DecryptionKeysDir = keys
	return e.f.puller(), store
}

func benchPull(b *testing.B, e *benchEnv, ref, keys string) {
	var bytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p, _ := e.puller(b, keys)
		before := e.px.Bytes()
		b.StartTimer()
		im, err := p.Pull(context.Background(), e.px.Addr+"/"+ref)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		bytes = e.px.Bytes() - before
		_ = im.Release()
		b.StartTimer()
	}
	b.SetBytes(bytes)
	b.ReportMetric(float64(peakRSS())/(1<<20), "peakRSS-MB")
}

func BenchmarkPullPlain(b *testing.B) {
	e := newBenchEnv(b)
	benchPull(b, e, e.plain, "")
}

func BenchmarkPullEncrypted(b *testing.B) {
	e := newBenchEnv(b)
	benchPull(b, e, e.enc, e.keys)
}

// BenchmarkPullSharedSecond pulls an image, then measures pulling a second
// one that shares all but its top layer.
func BenchmarkPullSharedSecond(b *testing.B) {
	e := newBenchEnv(b)
	var bytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p, _ := e.puller(b, "")
		first, err := p.Pull(context.Background(), e.px.Addr+"/"+e.plain)
		if err != nil {
			b.Fatal(err)
		}
		before := e.px.Bytes()
		b.StartTimer()
		second, err := p.Pull(context.Background(), e.px.Addr+"/"+e.shared)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		bytes = e.px.Bytes() - before
		_ = second.Release()
		_ = first.Release()
		b.StartTimer()
	}
	b.ReportMetric(float64(bytes), "downloaded-B")
}

// peakRSS is this process's high-water resident set (VmHWM) in bytes.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
