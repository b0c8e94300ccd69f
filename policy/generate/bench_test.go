package generate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// threeImagePod is the benchmark's pod: three containers, three images.
const threeImagePod = `apiVersion: v1
kind: Pod
metadata:
  name: three
spec:
  containers:
  - {name: web, image: REGISTRY/web:v1}
  - {name: tool, image: REGISTRY/tool:v1}
  - {name: user, image: REGISTRY/user:v1}
`

// proxied builds the test images and a counting proxy in front of the
// registry; the YAML names images through the proxy.
func proxied(t testing.TB) (*testImages, *testregistry.Proxy, string, []byte) {
	ti := buildImages(t)
	px := testregistry.NewProxy(t, ti.reg)
	conf := filepath.Join(ti.dir, "registries-proxy.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", px.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	return ti, px, conf, []byte(strings.ReplaceAll(threeImagePod, "REGISTRY", px.Addr))
}

// TestWarmCacheNoBlobRequests: a second generation with the same cache
// downloads no blob, and yields the same policy.
func TestWarmCacheNoBlobRequests(t *testing.T) {
	_, px, conf, yaml := proxied(t)
	o := Options{Images: ImageOptions{RegistriesConf: conf, CacheDir: t.TempDir()}}
	first, err := Generate(context.Background(), yaml, o)
	if err != nil {
		t.Fatal(err)
	}
	if px.BlobGets() == 0 {
		t.Fatal("cold run fetched no blob")
	}
	before := px.BlobGets()
	second, err := Generate(context.Background(), yaml, o)
	if err != nil {
		t.Fatal(err)
	}
	if n := px.BlobGets() - before; n != 0 || second.BlobRequests != 0 {
		t.Fatalf("warm run made %d blob requests (%d counted by the generator)", n, second.BlobRequests)
	}
	if first.Policy != second.Policy {
		t.Fatal("warm run wrote another policy")
	}
}

// TestUsersFromLayers: users come from the top layer that settles them,
// whiteouts included, through gzip and zstd layers, and only the top
// layer is read when it holds both files.
func TestUsersFromLayers(t *testing.T) {
	_, _, conf, yaml := proxied(t)
	res, err := Generate(context.Background(), yaml, Options{Images: ImageOptions{RegistriesConf: conf}})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*ImageInfo{}
	for ref, info := range res.Images {
		byName[ref[strings.LastIndex(ref, "/")+1:]] = info
	}
	web, tool, user := byName["web:v1"], byName["tool:v1"], byName["user:v1"]
	if web.Passwd != webPasswd || web.Group != webGroup {
		t.Errorf("web: passwd %q group %q", web.Passwd, web.Group)
	}
	if web.Fetched >= web.Compressed/2 {
		t.Errorf("web: fetched %d of %d compressed bytes; the top layer alone settles both files", web.Fetched, web.Compressed)
	}
	if tool.Passwd != basePasswd || tool.Group != "" {
		t.Errorf("tool (zstd, /etc/group whited out): passwd %q group %q", tool.Passwd, tool.Group)
	}
	if user.Passwd != webPasswd {
		t.Errorf("user: passwd %q", user.Passwd)
	}
	if !strings.Contains(res.Policy, `"uid": 1000`) {
		t.Error("the image user app did not resolve to uid 1000")
	}
}

// BenchmarkGenerate measures a cold generation (empty cache: bytes fetched
// against the images' compressed size) and a warm one (cached).
func BenchmarkGenerate(b *testing.B) {
	ti, px, conf, yaml := proxied(b)
	_ = ti
	b.Run("cold", func(b *testing.B) {
		var fetched, total int64
		for i := 0; i < b.N; i++ {
			before := px.Bytes()
			res, err := Generate(context.Background(), yaml, Options{Images: ImageOptions{RegistriesConf: conf, CacheDir: b.TempDir()}})
			if err != nil {
				b.Fatal(err)
			}
			fetched += px.Bytes() - before
			total = 0
			for _, info := range res.Images {
				total += info.Compressed
			}
		}
		b.ReportMetric(float64(fetched)/float64(b.N), "bytes-fetched/op")
		b.ReportMetric(float64(total), "bytes-compressed-total")
		b.ReportMetric(100*float64(fetched)/float64(b.N)/float64(total), "%fetched")
	})
	b.Run("warm", func(b *testing.B) {
		o := Options{Images: ImageOptions{RegistriesConf: conf, CacheDir: b.TempDir()}}
		if _, err := Generate(context.Background(), yaml, o); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := Generate(context.Background(), yaml, o); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// createDecisionSetup generates the policy of the three-image pod and the
// CreateContainerRequest the runtime sends for its third container.
func createDecisionSetup(b *testing.B) (*policy.Policy, *agentpb.CreateContainerRequest) {
	_, _, conf, yaml := proxied(b)
	res, err := Generate(context.Background(), yaml, Options{Images: ImageOptions{RegistriesConf: conf}})
	if err != nil {
		b.Fatal(err)
	}
	p, err := policy.Load(context.Background(), res.Policy, "generated")
	if err != nil {
		b.Fatal(err)
	}
	in, err := ParseInput(res.YAML, defaults(b).PassThrough)
	if err != nil {
		b.Fatal(err)
	}
	rt := &miniRuntime{t: b, in: in, images: res.Images, runDir: "/run/kata-containers"}
	w := in.Workloads[0]
	return p, rt.request(w, "three", w.Spec.Containers[2])
}

// BenchmarkCreateContainerDecision is the agent engine's decision for a
// CreateContainer of the three-image pod under its generated policy.
func BenchmarkCreateContainerDecision(b *testing.B) {
	p, req := createDecisionSetup(b)
	doc := input.Encode(req)
	ctx := context.Background()
	var times []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		d, err := p.Evaluate(ctx, "CreateContainerRequest", doc)
		times = append(times, time.Since(start))
		if err != nil || !d.Allowed {
			b.Fatalf("decision %+v %v", d, err)
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
}

// BenchmarkGateCreateContainerDecision is the same decision as the agent
// makes it: the gate turns the CreateContainerRequest message into the
// policy's input (policy/input) and decides; any pending state is
// discarded after each decision, so every iteration decides the same.
func BenchmarkGateCreateContainerDecision(b *testing.B) {
	p, req := createDecisionSetup(b)
	e := policy.NewEngine(p, nil, nil)
	ctx := context.Background()
	discard := errors.New("benchmark: discard the decision's state")
	var times []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		finish, err := e.Gate(ctx, "CreateContainer", req)
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatalf("decision: %v", err)
		}
		if finish != nil {
			finish(discard)
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
}
