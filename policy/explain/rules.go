package explain

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// ruleFinding explains a denial from the rule bodies of kind. Each body is
// evaluated on growing prefixes of its conditions; the first condition
// after which no binding is left is where that body failed. The body that
// got furthest is reported: it is the one the request nearly satisfied.
func (e Evaluator) ruleFinding(ctx context.Context, kind string, in ast.Value) Finding {
	f := Finding{Rule: kind, Container: -1}
	ref, err := ast.ParseRef(packagePath + "." + kind)
	if err != nil {
		f.Detail = "not a rule name"
		return f
	}
	var defaults, bodies []*ast.Rule
	for _, r := range e.Compiler.GetRulesExact(ref) {
		if r.Default {
			defaults = append(defaults, r)
		} else {
			bodies = append(bodies, r)
		}
	}
	if len(defaults)+len(bodies) == 0 {
		f.Detail = "the policy has no rule " + kind + " (undefined)"
		return f
	}
	best, bestAt, bestFailed := (*ast.Rule)(nil), -1, false
	for _, r := range bodies {
		at, failed := e.firstFailure(ctx, r.Body, in)
		if !failed {
			// The body holds: this rule's value is the denial.
			f.Location = location(r.Location)
			f.Detail = "this rule applies and its value " + shorten(r.Head.Value.String()) + " denies"
			return f
		}
		if at > bestAt {
			best, bestAt, bestFailed = r, at, failed
		}
	}
	if best == nil || !bestFailed {
		d := "no rule allows it"
		if len(defaults) > 0 {
			f.Location = location(defaults[0].Location)
			d = "no rule applies, the default " + shorten(defaults[0].Head.Value.String()) + " does"
		}
		f.Detail = d
		return f
	}
	expr := best.Body[bestAt]
	f.Location = location(expr.Location)
	f.Field = exprText(expr.Location, expr.String())
	f.Detail = "is undefined or false"
	if vals := e.valuesAt(ctx, best.Body, bestAt, in); vals != "" {
		f.Detail += " (" + vals + ")"
	}
	return f
}

// firstFailure returns the index of the first condition of body after
// which the conjunction has no result, and whether there is one.
func (e Evaluator) firstFailure(ctx context.Context, body ast.Body, in ast.Value) (int, bool) {
	for k := range body {
		rs, err := e.query(ctx, body[:k+1], in)
		if err != nil || len(rs) == 0 {
			return k, true
		}
	}
	return len(body), false
}

// bindings are a query solution's variables, by the query's own names.
type bindings map[string]ast.Value

// query evaluates a compiled body fragment against the policy and returns
// its solutions. It runs OPA's evaluator directly, as the engine does
// (policy/eval.go), so the agent links no other evaluation path.
func (e Evaluator) query(ctx context.Context, body ast.Body, in ast.Value) ([]bindings, error) {
	qc := e.Compiler.QueryCompiler()
	compiled, err := qc.Compile(body.Copy())
	if err != nil {
		return nil, err
	}
	txn, err := e.Store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer e.Store.Abort(ctx, txn)
	cancel := topdown.NewCancel()
	defer context.AfterFunc(ctx, cancel.Cancel)()
	// The query compiler may rename the query's variables; solutions are
	// reported under the names the query was written with.
	source := qc.RewrittenVars()
	var out []bindings
	err = topdown.NewQuery(compiled).
		WithQueryCompiler(qc).
		WithCompiler(e.Compiler).
		WithStore(e.Store).
		WithTransaction(txn).
		WithInput(ast.NewTerm(in)).
		WithMetrics(metrics.NoOp()).
		WithCancel(cancel).
		Iter(ctx, func(qr topdown.QueryResult) error {
			b := make(bindings, len(qr))
			for v, t := range qr {
				if orig, ok := source[v]; ok {
					v = orig
				}
				b[string(v)] = t.Value
			}
			out = append(out, b)
			return nil
		})
	return out, err
}

// valuesAt quotes the values the failing condition body[k] reads: the
// input documents it names, and variables as bound by the first solution
// of the conditions before it, each under the name the policy's source
// gives it.
func (e Evaluator) valuesAt(ctx context.Context, body ast.Body, k int, in ast.Value) string {
	bound := e.bindingsBefore(ctx, body, k, in)
	names := e.sourceNames(body[:k])
	seen := map[string]bool{}
	var parts []string
	add := func(name, val string) {
		if !seen[name] && !strings.HasPrefix(name, "__") {
			seen[name] = true
			parts = append(parts, name+" = "+val)
		}
	}
	// A variable read through a reference is shown by that reference
	// (c.args, not all of c).
	heads := map[ast.Var]bool{}
	ast.WalkRefs(body[k], func(r ast.Ref) bool {
		if v, ok := r[0].Value.(ast.Var); ok {
			heads[v] = true
		}
		if name, val, ok := e.refValue(r, bound, in, names); ok {
			add(name, val)
		}
		return false
	})
	ast.WalkVars(body[k], func(v ast.Var) bool {
		if bv, ok := bound[string(v)]; ok && !heads[v] {
			add(names.of(v), quote(bv))
		}
		return false
	})
	sort.Strings(parts)
	if len(parts) > 4 {
		parts = parts[:4]
	}
	return strings.Join(parts, ", ")
}

// bindingsBefore returns the variables of body[k] as bound by the first
// solution of body[:k]. Result bindings leave out the compiler's own
// variables, so each is captured under a plain name.
func (e Evaluator) bindingsBefore(ctx context.Context, body ast.Body, k int, in ast.Value) bindings {
	if k == 0 {
		return nil
	}
	q := body[:k].Copy()
	// Only variables the prefix binds can be captured: another would make
	// the query unsafe.
	bound := map[ast.Var]bool{}
	ast.WalkVars(q, func(v ast.Var) bool {
		bound[v] = true
		return false
	})
	capture := map[string]ast.Var{}
	ast.WalkVars(body[k], func(v ast.Var) bool {
		name := fmt.Sprintf("explain_capture_%d", len(capture))
		if _, dup := capture[string(v)]; !dup && bound[v] && !v.IsWildcard() {
			capture[string(v)] = ast.Var(name)
			q = append(q, ast.Equality.Expr(ast.VarTerm(name), ast.VarTerm(string(v))))
		}
		return false
	})
	rs, err := e.query(ctx, q, in)
	if err != nil || len(rs) == 0 {
		return nil
	}
	out := bindings{}
	for v, c := range capture {
		if val, ok := rs[0][string(c)]; ok {
			out[v] = val
		}
	}
	return out
}

// varNames maps the compiler's variables back to the policy's text.
type varNames struct {
	rewritten map[ast.Var]ast.Var
	generated map[ast.Var]string
}

// sourceNames names the variables of a compiled body: locals the compiler
// renamed by their original name, and the ones it introduced for
// sub-expressions by the source text of that sub-expression.
func (e Evaluator) sourceNames(body ast.Body) varNames {
	n := varNames{rewritten: e.Compiler.RewrittenVars, generated: map[ast.Var]string{}}
	for _, expr := range body {
		if !expr.IsEquality() || expr.Location == nil {
			continue
		}
		if v, ok := expr.Operand(0).Value.(ast.Var); ok && v.IsGenerated() {
			if _, renamed := n.rewritten[v]; !renamed {
				n.generated[v] = shorten(string(expr.Location.Text))
			}
		}
	}
	return n
}

func (n varNames) of(v ast.Var) string {
	if orig, ok := n.rewritten[v]; ok {
		return string(orig)
	}
	if text, ok := n.generated[v]; ok {
		return text
	}
	return string(v)
}

// refValue resolves a reference rooted at input or at a bound variable
// whose other parts are ground once bound.
func (e Evaluator) refValue(r ast.Ref, bound bindings, in ast.Value, names varNames) (string, string, bool) {
	head, ok := r[0].Value.(ast.Var)
	if !ok || len(r) < 2 {
		return "", "", false
	}
	path := make(ast.Ref, 0, len(r)-1)
	for _, t := range r[1:] {
		if v, ok := t.Value.(ast.Var); ok {
			bv, ok := bound[string(v)]
			if !ok {
				return "", "", false
			}
			t = ast.NewTerm(bv)
		}
		if !t.IsGround() {
			return "", "", false
		}
		path = append(path, t)
	}
	var root ast.Value
	switch {
	case head.Equal(ast.InputRootDocument.Value):
		root = in
	case bound[string(head)] != nil:
		root = bound[string(head)]
	default:
		return "", "", false
	}
	name := names.refName(r)
	v, err := root.Find(path)
	if err != nil {
		return name, "undefined", true
	}
	return name, quote(v), true
}

// refName renders a reference with the policy's own variable names.
func (n varNames) refName(r ast.Ref) string {
	var b strings.Builder
	for i, t := range r {
		v, isVar := t.Value.(ast.Var)
		switch {
		case i == 0 && isVar:
			b.WriteString(n.of(v))
		case isVar:
			b.WriteString("[" + n.of(v) + "]")
		default:
			if s, ok := t.Value.(ast.String); ok && ast.IsVarCompatibleString(string(s)) {
				b.WriteString("." + string(s))
			} else {
				b.WriteString("[" + t.String() + "]")
			}
		}
	}
	return b.String()
}

// location renders file:line.
func location(l *ast.Location) string {
	if l == nil {
		return ""
	}
	return fmt.Sprintf("%s:%d", l.File, l.Row)
}

// exprText is the source text of a condition, or its compiled form when
// the source is not at hand.
func exprText(l *ast.Location, fallback string) string {
	if l != nil && len(l.Text) > 0 {
		return shorten(string(l.Text))
	}
	return shorten(fallback)
}
