package policy

import (
	"context"
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

func loadText(t *testing.T, text string) *Policy {
	t.Helper()
	p, err := Load(context.Background(), text, "test")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Only decisions that are a function of the policy, state and input get
// a cache key: not those of rules reaching the time, randomness or the
// network, nor those of rules that select data through a variable.
func TestCacheKeyOnlyForPureRules(t *testing.T) {
	for _, tc := range []struct {
		name, rule string
		cached     bool
	}{
		{"constant", "ReadStreamRequest := true", true},
		{"input", `ReadStreamRequest if input.container_id == "c1"`, true},
		{"state", "ReadStreamRequest if not data.pstate.x", true},
		{"time", "ReadStreamRequest if time.now_ns() > 0", false},
		{"time via helper", "ReadStreamRequest if h\nh if time.now_ns() > 0", false},
		{"time via function", "ReadStreamRequest if f(1)\nf(x) if time.now_ns() > x", false},
		{"time via else", "ReadStreamRequest := false if data.pstate.q\nelse := time.now_ns() > 0", false},
		{"random", "ReadStreamRequest if rand.intn(\"x\", 2) == 0", false},
		{"uuid", "ReadStreamRequest if uuid.rfc4122(\"x\") != \"\"", false},
		{"network", `ReadStreamRequest if http.send({"method": "get", "url": "http://x"}).status_code == 200`, false},
		{"runtime", "ReadStreamRequest if opa.runtime().env.X == \"1\"", false},
		{"data through a variable", "ReadStreamRequest if { some k; data.pstate[k] == 1 }", false},
	} {
		p := loadText(t, "package agent_policy\nimport rego.v1\n"+tc.rule+"\n")
		req := &agentpb.ReadStreamRequest{ContainerId: "c1", Len: 1}
		in := ast.MustInterfaceToValue(map[string]any{"container_id": "c1", "exec_id": "", "len": 1})
		if got := p.cacheKey("ReadStreamRequest", req, in) != ""; got != tc.cached {
			t.Errorf("%s: cached %v, want %v", tc.name, got, tc.cached)
		}
	}
}

// The key holds the whole input, so two inputs never share a decision;
// a large request gets none.
func TestCacheKeyNamesInput(t *testing.T) {
	p := loadText(t, "package agent_policy\nimport rego.v1\nReadStreamRequest if input.container_id == \"c1\"\n")
	key := func(m map[string]any) string {
		return p.cacheKey("ReadStreamRequest", &agentpb.ReadStreamRequest{}, ast.MustInterfaceToValue(m))
	}
	a := key(map[string]any{"container_id": "c1", "len": 1})
	b := key(map[string]any{"container_id": "c1", "len": 2})
	c := key(map[string]any{"len": 1, "container_id": "c1"})
	if a == "" || a == b || a != c {
		t.Fatalf("keys %q %q %q: want distinct inputs distinct, key order ignored", a, b, c)
	}
	p = loadText(t, "package agent_policy\nimport rego.v1\nCreateContainerRequest if input.container_id == \"c1\"\n")
	if k := p.cacheKey("CreateContainerRequest", &agentpb.CreateContainerRequest{ContainerId: "c1"}, ast.MustInterfaceToValue(map[string]any{"container_id": "c1"})); k != "" {
		t.Fatalf("a CreateContainerRequest (not flat) got key %q", k)
	}
	p = loadText(t, "package agent_policy\nimport rego.v1\nReadStreamRequest if input.container_id == \"c1\"\n")
	big := &agentpb.ReadStreamRequest{ContainerId: string(make([]byte, maxCacheKey))}
	if k := p.cacheKey("ReadStreamRequest", big, ast.MustInterfaceToValue(map[string]any{"container_id": big.ContainerId})); k != "" {
		t.Fatalf("a %d-byte request got a key", maxCacheKey)
	}
}

// Decisions with ops are never cached, and the cache never grows past
// its bound whatever the host sends.
func TestDecisionCacheBounded(t *testing.T) {
	p := loadText(t, `package agent_policy
import rego.v1
ReadStreamRequest if input.container_id != ""
CloseStdinRequest := {"allowed": true, "ops": [{"op": "add", "path": "/pstate/x", "value": 1}]}
`)
	ctx := context.Background()
	for i := 0; i < 3*maxCached; i++ {
		in := ast.MustInterfaceToValue(map[string]any{"container_id": fmt.Sprint("c", i)})
		key := p.cacheKey("ReadStreamRequest", &agentpb.ReadStreamRequest{}, in)
		if _, _, err := p.decideCached(ctx, "ReadStreamRequest", in, key); err != nil {
			t.Fatal(err)
		}
		if n := len(p.cache.m); n > maxCached {
			t.Fatalf("%d cached decisions", n)
		}
	}
	in := ast.NewObject()
	d, pend, err := p.decideCached(ctx, "CloseStdinRequest", in, p.cacheKey("CloseStdinRequest", &agentpb.CloseStdinRequest{}, in))
	if err != nil || pend == nil || len(d.Ops) == 0 {
		t.Fatalf("close: %+v %v", d, err)
	}
	pend.Discard()
	if _, ok := p.cache.m["CloseStdinRequest"]; ok {
		t.Fatal("a decision with ops was cached")
	}
}

// A decision made on an older state is never served for a newer one,
// nor stored over it.
func TestDecisionCacheVersions(t *testing.T) {
	var c decisionCache
	c.put(1, "k", Decision{Allowed: true})
	if d, ok := c.get(1, "k"); !ok || !d.Allowed {
		t.Fatal("cached decision not found")
	}
	if _, ok := c.get(2, "k"); ok {
		t.Fatal("decision of state 1 served for state 2")
	}
	c.put(2, "other", Decision{})
	c.put(1, "k", Decision{Allowed: true}) // decided on state 1, finished late
	if _, ok := c.get(2, "k"); ok {
		t.Fatal("late decision of state 1 stored for state 2")
	}
	if _, ok := c.get(1, "k"); ok {
		t.Fatal("state 1's decisions kept after state 2's arrived")
	}
}
