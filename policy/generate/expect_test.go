package generate

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// fastPath is the rules' one-step comparison of c.expect; the tests
// below take it out to compare with the field tests alone.
const fastPath = "ok_expected(c) if object.subset(input, c.expect)"

// fastPathTaken is a rule added for the test: the request matches an
// entry's c.expect, so the field tests it stands for were skipped.
const fastPathTaken = `
default fast_path_taken := false

fast_path_taken if {
	some c in candidates
	object.subset(input, c.expect)
}
`

// TestExpectedFastPath: the fields compared in one step (c.expect) never
// decide otherwise than their field tests. Every request the runtime
// sends for the corpus, and every mutation of it, gets the same verdict
// and the same denial with the fast path as with the field tests alone;
// and the requests the runtime sends do take the fast path, so c.expect
// holds what the runtime sends.
func TestExpectedFastPath(t *testing.T) {
	ti := buildImages(t)
	ctx := context.Background()
	cache := t.TempDir()
	for name, yaml := range corpus(t, ti.reg.Addr) {
		t.Run(name, func(t *testing.T) {
			res, err := Generate(ctx, yaml, Options{Images: ImageOptions{RegistriesConf: ti.conf, CacheDir: cache}})
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(res.Policy, fastPath); n != 1 {
				t.Fatalf("the rules hold %d copies of %q, want 1", n, fastPath)
			}
			fast := loadPolicy(t, res.Policy+fastPathTaken)
			slow := loadPolicy(t, strings.Replace(res.Policy, fastPath, "ok_expected(c) if false", 1))
			in, err := ParseInput(res.YAML, defaults(t).PassThrough)
			if err != nil {
				t.Fatal(err)
			}
			rt := &miniRuntime{t: t, in: in, images: res.Images, runDir: "/run/kata-containers"}
			for _, w := range in.Workloads {
				pod := rt.podName(w)
				for _, ct := range append(slices.Clone(w.Spec.InitContainers), w.Spec.Containers...) {
					req := rt.request(w, pod, ct)
					if d := decideRule(t, fast, "fast_path_taken", req); !d.Allowed {
						t.Errorf("%s: the runtime's request does not match c.expect", ct.Name)
					}
					sameDecision(t, ct.Name, fast, slow, req)
					for _, m := range mutations(t, ti) {
						req := rt.request(w, pod, ct)
						if m.applies != nil && !m.applies(req) {
							continue
						}
						m.apply(req)
						sameDecision(t, ct.Name+": "+m.name, fast, slow, req)
					}
				}
			}
		})
	}
}

func loadPolicy(t *testing.T, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Load(context.Background(), text, "generated")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func decideRule(t *testing.T, p *policy.Policy, name string, req *agentpb.CreateContainerRequest) policy.Decision {
	t.Helper()
	d, err := p.Evaluate(context.Background(), name, input.Encode(req))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// sameDecision decides req under both policies and compares the
// verdicts and the denials' text.
func sameDecision(t *testing.T, what string, fast, slow *policy.Policy, req *agentpb.CreateContainerRequest) {
	t.Helper()
	f, s := decideRule(t, fast, "CreateContainerRequest", req), decideRule(t, slow, "CreateContainerRequest", req)
	if f.Allowed != s.Allowed || f.Prints != s.Prints {
		js, _ := json.Marshal(input.Encode(req))
		t.Errorf("%s: with the fast path allowed %v %q, with the field tests allowed %v %q\nrequest %s", what, f.Allowed, f.Prints, s.Allowed, s.Prints, js)
	}
}
