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

// fastPaths are the rules' other shortcuts, each a line that, replaced
// by false, leaves the decision to the slower test after it: the
// capabilities compared as sorted lists, and the runtime's fixed mounts
// found whole.
var fastPaths = []string{
	"count(request_cap_lists - {[], c.caps}) == 0",
	"m in exact[m.destination]",
}

// fastPathTaken is a rule added for the test: the request matches an
// entry's c.expect, so the field tests it stands for were skipped.
// fastPathMissed holds when a request the slower tests allow missed one
// of the other shortcuts: capabilities they allow for a container that
// is not privileged, a mount they find among the fixed mounts.
const fastPathTaken = `
default fast_path_taken := false

fast_path_taken if {
	some c in candidates
	object.subset(input, c.expect)
}

default fast_path_missed := false

fast_path_missed if {
	some c in candidates
	not c.privileged
	count(requested_caps - {x | some x in c.caps}) == 0
	not count(request_cap_lists - {[], c.caps}) == 0
}

fast_path_missed if {
	some m in input.OCI.Mounts
	exact_mount_ok(policy_data.exact_mounts, m)
	not m in policy_data.exact_mounts[m.destination]
}
`

// TestExpectedFastPath: the fields compared in one step (c.expect) and
// the other shortcuts (fastPaths) never decide otherwise than the tests
// they stand for. Every request the runtime sends for the corpus, and
// every mutation of it, gets the same verdict and the same denial with
// the shortcuts as with the field tests alone; and the requests the
// runtime sends do take them, so c.expect holds what the runtime sends.
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
			slowText := strings.Replace(res.Policy, fastPath, "ok_expected(c) if false", 1)
			for _, f := range fastPaths {
				if n := strings.Count(slowText, f); n != 1 {
					t.Fatalf("the rules hold %d copies of %q, want 1", n, f)
				}
				slowText = strings.Replace(slowText, f, "false", 1)
			}
			slow := loadPolicy(t, slowText)
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
					if d := decideRule(t, fast, "fast_path_missed", req); d.Allowed {
						t.Errorf("%s: the runtime's request misses the capabilities' or the fixed mounts' shortcut", ct.Name)
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
