package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// allowFailuresRule, when true, turns every denial into a logged allow.
const allowFailuresRule = "AllowRequestsFailingPolicy"

// initialState is the data document a policy starts with; rules keep their
// state under data.pstate.
const initialState = `{"pstate":{}}`

// Policy is one compiled policy with its state. Evaluation is safe for
// concurrent use; state changes go through Decide's commit.
type Policy struct {
	text, digest, source string
	store                storage.Store
	allowFailures        bool

	// quiet decides; verbose, which keeps print() calls, explains denials.
	quiet, verbose *queries
	inputUse       sync.Map // request name → deps, see decisionDeps
	cache          decisionCache

	// opsMu is held from a decision that changes state until its operation
	// finishes, so such requests run one at a time against the state they
	// were decided on. Decisions without ops never take it.
	opsMu   sync.Mutex
	stateMu sync.Mutex
	state   []byte // the data document as JSON, mirrored in store
	version atomic.Uint64
}

// Load compiles text into a Policy. source says where it came from (for logs).
func Load(ctx context.Context, text, source string) (*Policy, error) {
	c, err := compile(text)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(initialState), &doc); err != nil {
		return nil, err
	}
	// The store keeps the state as OPA values, converted once per commit;
	// otherwise every read of data.pstate converts it again.
	store := inmem.NewFromObjectWithOpts(doc, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	p := &Policy{
		text: text, digest: Digest(text), source: source,
		store:   store,
		quiet:   &queries{compiler: c.quiet, store: store},
		verbose: &queries{compiler: c.verbose, store: store, print: true},
		state:   []byte(initialState),
	}
	// Kata evaluates this once per policy, with an empty input.
	if d, err := p.eval(ctx, allowFailuresRule, ast.NewObject(), false); err == nil && d.defined {
		p.allowFailures = d.Allowed
	}
	return p, nil
}

// Text is the policy source; Digest its sha256; Source where it came from.
func (p *Policy) Text() string   { return p.text }
func (p *Policy) Digest() string { return p.digest }
func (p *Policy) Source() string { return p.source }

// AllowsFailures reports whether AllowRequestsFailingPolicy is set.
func (p *Policy) AllowsFailures() bool { return p.allowFailures }

// State returns the current data document as JSON.
func (p *Policy) State() []byte {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return append([]byte(nil), p.state...)
}

// Decision is the outcome of evaluating one request.
type Decision struct {
	Name    string
	Allowed bool
	// Overridden is true when the policy denied but AllowRequestsFailingPolicy
	// (or an undefined rule under it) let the request through.
	Overridden bool
	// Ops is the JSON Patch an allowing rule returned, nil when none.
	Ops json.RawMessage
	// Prints is the rule's print() output, joined by spaces.
	Prints string
	// Why is the one-line reason for a denial or an undefined rule
	// (policy/explain): always from Explain, and from Evaluate and the
	// gate for CreateContainerRequest.
	Why     string
	defined bool
}

// Pending is an allowed decision whose state change waits for the outcome
// of the operation. Exactly one of Commit or Discard must be called.
type Pending struct {
	p    *Policy
	next []byte
	once sync.Once
}

// Decide evaluates a request. When the decision carries ops, it also
// computes the state they lead to and returns a Pending that holds the
// policy's ops lock until it is committed or discarded; a decision that was
// evaluated against state changed meanwhile is evaluated again under the
// lock, so ops always apply to the state they were computed from.
func (p *Policy) Decide(ctx context.Context, name string, in map[string]any) (Decision, *Pending, error) {
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		return Decision{Name: name}, nil, fmt.Errorf("input: %w", err)
	}
	return p.decideValue(ctx, name, v)
}

// decideValue is Decide over an input already in OPA's form.
func (p *Policy) decideValue(ctx context.Context, name string, in ast.Value) (Decision, *Pending, error) {
	ver := p.version.Load()
	d, err := p.decide(ctx, name, in, false)
	if err != nil || len(d.Ops) == 0 {
		return d, nil, err
	}
	p.opsMu.Lock()
	if p.version.Load() != ver {
		if d, err = p.decide(ctx, name, in, false); err != nil || len(d.Ops) == 0 {
			p.opsMu.Unlock()
			return d, nil, err
		}
	}
	next, err := p.patched(d.Ops)
	if err != nil {
		p.opsMu.Unlock()
		return d, nil, err
	}
	return d, &Pending{p: p, next: next}, nil
}

func (p *Policy) patched(ops json.RawMessage) ([]byte, error) {
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		return nil, fmt.Errorf("ops: %w", err)
	}
	p.stateMu.Lock()
	cur := p.state
	p.stateMu.Unlock()
	next, err := patch.Apply(cur)
	if err != nil {
		return nil, fmt.Errorf("apply ops to policy state: %w", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(next, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("ops leave the policy state as a non-object")
	}
	return next, nil
}

// Commit installs the new state and releases the lock.
func (pe *Pending) Commit(ctx context.Context) error {
	var err error
	pe.once.Do(func() {
		defer pe.p.opsMu.Unlock()
		err = pe.p.install(ctx, pe.next)
	})
	return err
}

// Discard drops the state change and releases the lock.
func (pe *Pending) Discard() {
	pe.once.Do(pe.p.opsMu.Unlock)
}

func (p *Policy) install(ctx context.Context, next []byte) error {
	var obj map[string]any
	dec := json.NewDecoder(strings.NewReader(string(next)))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return fmt.Errorf("policy state: %w", err)
	}
	if err := storage.WriteOne(ctx, p.store, storage.ReplaceOp, storage.RootPath, obj); err != nil {
		return fmt.Errorf("policy state: %w", err)
	}
	p.stateMu.Lock()
	p.state = next
	p.stateMu.Unlock()
	p.version.Add(1)
	return nil
}
