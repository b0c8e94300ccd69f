package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/print"
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
	compiler             *ast.Compiler
	store                storage.Store
	allowFailures        bool

	prepMu  sync.Mutex
	queries sync.Map // request name → *rego.PreparedEvalQuery

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
	p := &Policy{
		text: text, digest: Digest(text), source: source,
		compiler: c,
		store:    inmem.NewFromObjectWithOpts(doc, inmem.OptRoundTripOnWrite(false)),
		state:    []byte(initialState),
	}
	// Kata evaluates this once per policy, with an empty input.
	if d, err := p.eval(ctx, allowFailuresRule, map[string]any{}); err == nil && d.defined {
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
	Prints  string
	defined bool
}

// errUndefined is returned when the policy has no value for a request.
var errUndefined = errors.New("policy has no decision for this request (rule undefined)")

func (p *Policy) query(ctx context.Context, name string) (*rego.PreparedEvalQuery, error) {
	if q, ok := p.queries.Load(name); ok {
		return q.(*rego.PreparedEvalQuery), nil
	}
	p.prepMu.Lock()
	defer p.prepMu.Unlock()
	if q, ok := p.queries.Load(name); ok {
		return q.(*rego.PreparedEvalQuery), nil
	}
	if !validRuleName(name) {
		return nil, fmt.Errorf("invalid request name %q", name)
	}
	pq, err := rego.New(
		rego.Query(packagePath+"."+name),
		rego.Compiler(p.compiler),
		rego.Store(p.store),
		rego.EnablePrintStatements(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", name, err)
	}
	p.queries.Store(name, &pq)
	return &pq, nil
}

func validRuleName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

type printer struct{ lines []string }

func (pr *printer) Print(_ print.Context, s string) error {
	pr.lines = append(pr.lines, s)
	return nil
}

// eval evaluates one rule. It does not touch state.
func (p *Policy) eval(ctx context.Context, name string, in map[string]any) (Decision, error) {
	d := Decision{Name: name}
	q, err := p.query(ctx, name)
	if err != nil {
		return d, err
	}
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		return d, fmt.Errorf("input: %w", err)
	}
	pr := &printer{}
	rs, err := q.Eval(ctx, rego.EvalParsedInput(v), rego.EvalPrintHook(pr))
	d.Prints = strings.Join(pr.lines, " ")
	if err != nil {
		return d, fmt.Errorf("evaluate: %w", err)
	}
	if len(rs) == 0 {
		return d, errUndefined
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return d, fmt.Errorf("unexpected result shape: %d results", len(rs))
	}
	d.defined = true
	switch r := rs[0].Expressions[0].Value.(type) {
	case bool:
		d.Allowed = r
	case map[string]any:
		allowed, ok := r["allowed"].(bool)
		if !ok {
			return d, fmt.Errorf("result object has no boolean \"allowed\"")
		}
		d.Allowed = allowed
		if ops, present := r["ops"]; present && ops != nil && allowed {
			raw, err := json.Marshal(ops)
			if err != nil {
				return d, fmt.Errorf("ops: %w", err)
			}
			patch, err := jsonpatch.DecodePatch(raw)
			if err != nil {
				return d, fmt.Errorf("ops are not a JSON Patch: %w", err)
			}
			if len(patch) > 0 {
				d.Ops = raw
			}
		}
	default:
		return d, fmt.Errorf("result is %T, want a boolean or {\"allowed\", \"ops\"}", r)
	}
	return d, nil
}

// Evaluate decides one request without changing state: the offline path
// (cocoonctl policy eval) and the first step of Decide. An undefined rule
// is an error unless the policy allows failures; a denial under
// AllowRequestsFailingPolicy comes back allowed and Overridden.
func (p *Policy) Evaluate(ctx context.Context, name string, in map[string]any) (Decision, error) {
	d, err := p.eval(ctx, name, in)
	if errors.Is(err, errUndefined) && p.allowFailures {
		d.Allowed, d.Overridden = true, true
		return d, nil
	}
	if err != nil {
		return d, err
	}
	if !d.Allowed && p.allowFailures {
		d.Allowed, d.Overridden = true, true
	}
	return d, nil
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
	v := p.version.Load()
	d, err := p.Evaluate(ctx, name, in)
	if err != nil || len(d.Ops) == 0 {
		return d, nil, err
	}
	p.opsMu.Lock()
	if p.version.Load() != v {
		if d, err = p.Evaluate(ctx, name, in); err != nil || len(d.Ops) == 0 {
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
