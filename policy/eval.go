package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/print"

	"github.com/cocoon-tee/cocoon/policy/explain"
)

// createContainer is the request whose denials the agent explains.
const createContainer = "CreateContainerRequest"

// queries prepares, once per request name, the query for one compiled
// variant of the policy. Preparing compiles the query against the policy
// and is far dearer than an evaluation.
type queries struct {
	compiler *ast.Compiler
	store    storage.Store
	print    bool

	mu       sync.Mutex
	prepared sync.Map // request name → *prepared
}

// prepared is the compiled query `<result> = data.agent_policy.<name>`.
// Decisions go to OPA's evaluator (topdown) directly: the rego package's
// wrapper adds per-evaluation work the agent never uses (metrics, a
// goroutine watching the context, converting every result to Go values).
type prepared struct {
	body   ast.Body
	qc     ast.QueryCompiler
	result ast.Var
}

// resultVar names the query's result before the query compiler renames it.
const resultVar = ast.Var("result")

func (qs *queries) get(_ context.Context, name string) (*prepared, error) {
	if q, ok := qs.prepared.Load(name); ok {
		return q.(*prepared), nil
	}
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if q, ok := qs.prepared.Load(name); ok {
		return q.(*prepared), nil
	}
	if !validRuleName(name) {
		return nil, fmt.Errorf("invalid request name %q", name)
	}
	ref, err := ast.ParseRef(packagePath + "." + name)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", name, err)
	}
	qc := qs.compiler.QueryCompiler().WithEnablePrintStatements(qs.print)
	body, err := qc.Compile(ast.NewBody(ast.Equality.Expr(ast.NewTerm(resultVar), ast.NewTerm(ref))))
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", name, err)
	}
	q := &prepared{body: body, qc: qc, result: resultVar}
	for k, v := range qc.RewrittenVars() {
		if v.Equal(resultVar) {
			q.result = k
		}
	}
	qs.prepared.Store(name, q)
	return q, nil
}

// run evaluates the query once against in: the value of the rule, nil
// when it is undefined. A cancelled ctx stops the evaluation.
func (qs *queries) run(ctx context.Context, q *prepared, in ast.Value, hook print.Hook) (ast.Value, error) {
	txn, err := qs.store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer qs.store.Abort(ctx, txn)
	cancel := topdown.NewCancel()
	defer context.AfterFunc(ctx, cancel.Cancel)()
	tq := topdown.NewQuery(q.body).
		WithQueryCompiler(q.qc).
		WithCompiler(qs.compiler).
		WithStore(qs.store).
		WithTransaction(txn).
		WithInput(ast.NewTerm(in)).
		WithMetrics(metrics.NoOp()).
		WithCancel(cancel)
	if hook != nil {
		tq = tq.WithPrintHook(hook)
	}
	var out []ast.Value
	err = tq.Iter(ctx, func(qr topdown.QueryResult) error {
		if t, ok := qr[q.result]; ok {
			out = append(out, t.Value)
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case len(out) == 0:
		return nil, nil
	case len(out) > 1:
		return nil, fmt.Errorf("unexpected result shape: %d results", len(out))
	}
	return out[0], nil
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

// errUndefined is returned when the policy has no value for a request.
var errUndefined = errors.New("policy has no decision for this request (rule undefined)")

// eval evaluates one rule against the quiet variant, or with verbose set
// against the one that keeps print() calls, collecting their output. It
// does not touch state.
func (p *Policy) eval(ctx context.Context, name string, in ast.Value, verbose bool) (Decision, error) {
	d := Decision{Name: name}
	qs := p.quiet
	if verbose {
		qs = p.verbose
	}
	q, err := qs.get(ctx, name)
	if err != nil {
		return d, err
	}
	var pr *printer
	var hook print.Hook
	if verbose {
		pr = &printer{}
		hook = pr
	}
	v, err := qs.run(ctx, q, in, hook)
	if pr != nil {
		d.Prints = strings.Join(pr.lines, " ")
	}
	if err != nil {
		return d, fmt.Errorf("evaluate: %w", err)
	}
	if v == nil {
		return d, errUndefined
	}
	d.defined = true
	// The common result, a boolean, needs no conversion; anything else is
	// judged in its JSON form.
	var r any
	if b, ok := v.(ast.Boolean); ok {
		r = bool(b)
	} else if r, err = ast.JSON(v); err != nil {
		return d, fmt.Errorf("evaluate: %w", err)
	}
	switch r := r.(type) {
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

// decide evaluates quietly and, for a denial or an undefined rule, again
// with print() output, which is what the host sees in the error. The
// decision is the quiet one: should the state change in between, the
// output may describe the newer state, never a different verdict.
func (p *Policy) decide(ctx context.Context, name string, in ast.Value, verbose bool) (Decision, error) {
	d, err := p.eval(ctx, name, in, verbose)
	refused := errors.Is(err, errUndefined) || (err == nil && !d.Allowed)
	if !verbose && refused {
		if v, _ := p.eval(ctx, name, in, true); v.Prints != "" {
			d.Prints = v.Prints
		}
	}
	// The agent explains only CreateContainer denials, where the closest
	// policy container is worth the extra evaluations; offline
	// explanations cover every request. Allowed decisions never get here.
	if refused && (verbose || name == createContainer) {
		d.Why = explain.Evaluator{Compiler: p.quiet.compiler, Store: p.store}.Why(ctx, name, in).String()
	}
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

// Evaluate decides one request without changing state: the offline path
// (cocoonctl policy eval) and the first step of Decide. An undefined rule
// is an error unless the policy allows failures; a denial under
// AllowRequestsFailingPolicy comes back allowed and Overridden. Prints is
// filled for denials and undefined rules only; Explain fills it always.
func (p *Policy) Evaluate(ctx context.Context, name string, in map[string]any) (Decision, error) {
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		return Decision{Name: name}, fmt.Errorf("input: %w", err)
	}
	return p.decide(ctx, name, v, false)
}

// Explain is Evaluate with the rule's print() output collected whatever
// the verdict, and for a denial or an undefined rule the one-line reason
// in Why, for investigating a policy offline. It is as slow as printing
// makes it.
func (p *Policy) Explain(ctx context.Context, name string, in map[string]any) (Decision, error) {
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		return Decision{Name: name}, fmt.Errorf("input: %w", err)
	}
	return p.decide(ctx, name, v, true)
}
