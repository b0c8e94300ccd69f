package policy

import (
	"context"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Decisions the cache keeps, and the longest key it takes: enough for the
// few streams and processes the runtime polls at once, while a host that
// varies its requests can neither grow the cache nor make keys costly.
const (
	maxCached   = 256
	maxCacheKey = 1024
)

// decisionCache remembers decisions that are a function of the policy,
// its state and the request alone (see decisionDeps): the stream reads
// and waits the runtime repeats many times a second. It holds decisions of
// one state version only; any state change empties it, and a policy
// installed by SetPolicy comes with an empty cache of its own. Decisions
// with state ops are never cached.
type decisionCache struct {
	mu      sync.Mutex
	version uint64
	m       map[string]Decision
}

// get returns the decision cached for key at state version.
func (c *decisionCache) get(version uint64, key string) (Decision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version != version {
		return Decision{}, false
	}
	d, ok := c.m[key]
	return d, ok
}

// put caches d for key at state version, dropping what an older version
// left; when full it starts over rather than track use.
func (c *decisionCache) put(version uint64, key string, d Decision) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version != version || c.m == nil || len(c.m) >= maxCached {
		if version < c.version {
			return // decided on a state already replaced
		}
		c.version = version
		c.m = make(map[string]Decision, 8)
	}
	c.m[key] = d
}

// decideCached is decideValue through the cache: key names the request
// and its input (see cacheKey), "" when the decision is not to be cached.
// A decision is cached only when it changes no state and the state did not
// change while it was made.
func (p *Policy) decideCached(ctx context.Context, name string, in ast.Value, key string) (Decision, *Pending, error) {
	if key == "" {
		return p.decideValue(ctx, name, in)
	}
	ver := p.version.Load()
	if d, ok := p.cache.get(ver, key); ok {
		return d, nil, nil
	}
	d, pend, err := p.decideValue(ctx, name, in)
	if err == nil && pend == nil && len(d.Ops) == 0 && p.version.Load() == ver {
		p.cache.put(ver, key, d)
	}
	return d, pend, err
}

// flat reports whether msg has no message fields: the requests the
// runtime repeats (stream reads and writes, waits, signals) are flat,
// and sizing a CreateContainerRequest to find it too large would cost
// more than its key could save.
func flat(msg proto.Message) bool {
	fields := msg.ProtoReflect().Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		if k := fields.Get(i).Kind(); k == protoreflect.MessageKind || k == protoreflect.GroupKind {
			return false
		}
	}
	return true
}

// cacheKey names a request's input for the cache: the request name alone
// when the rule reads no input, else with the input's canonical text
// (keys sorted) when the request is small and flat; "" when the decision
// may depend on more than the policy, state and input, or the request is
// too large to be worth it.
func (p *Policy) cacheKey(name string, msg proto.Message, in ast.Value) string {
	d := p.deps(name)
	switch {
	case d.other:
		return ""
	case !d.input:
		return name
	case !flat(msg) || proto.Size(msg) > maxCacheKey/2:
		return ""
	}
	k := name + "\x00" + in.String()
	if len(k) > maxCacheKey {
		return ""
	}
	return k
}
