package policy

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// deps is what deciding one request can depend on besides the policy
// and its state, from the rules of its compiled query.
type deps struct {
	// input: the decision may read `input`.
	input bool
	// other: the decision may depend on something else as well (the
	// time, randomness, the network, the runtime), so the same input and
	// state need not get the same decision again.
	other bool
}

// readsInput reports whether deciding request name can read `input`
// (see decisionDeps).
func (p *Policy) readsInput(name string) bool { return p.deps(name).input }

// deps analyses the policy's print-keeping compilation, so that a
// denial's print output shows the real input, cached per name.
func (p *Policy) deps(name string) deps {
	if v, ok := p.inputUse.Load(name); ok {
		return v.(deps)
	}
	d := deps{input: true, other: true}
	if validRuleName(name) {
		d = decisionDeps(p.verbose.compiler, name)
	}
	p.inputUse.Store(name, d)
	return d
}

// decisionDeps reports what deciding request name can depend on. If
// neither the rules defining data.agent_policy.<name> nor any rule or
// function they reach mention input, the decision is the same for every
// input and the gate need not build one — the shipped policies decide most
// requests that way, and building a CreateContainer input costs more than
// such a decision. If none of them calls a built-in whose answer changes
// from call to call, the decision is a function of the policy, its state
// and its input, which the decision cache relies on. Any doubt counts as
// both: a reference into data selected by a variable below the package
// might reach any rule.
func decisionDeps(c *ast.Compiler, name string) deps {
	ref := ast.MustParseRef(packagePath).Append(ast.StringTerm(name))
	var out deps
	seen := map[*ast.Rule]bool{}
	stack := c.GetRules(ref)
	for len(stack) > 0 && !(out.input && out.other) {
		r := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if r == nil || seen[r] {
			continue
		}
		seen[r] = true
		d := ruleDeps(r)
		out.input = out.input || d.input
		out.other = out.other || d.other
		stack = append(stack, r.Else)
		for dep := range c.Graph.Dependencies(r) {
			if d, ok := dep.(*ast.Rule); ok {
				stack = append(stack, d)
			}
		}
	}
	return out
}

// ruleDeps looks at one rule: input when it names input anywhere (a
// reference, a `with` target, a bare `input`); other when it names a
// built-in that is not a function of its arguments; both when it refers
// to data through a variable within the package path, which the
// dependency graph cannot resolve to rules.
func ruleDeps(r *ast.Rule) deps {
	var d deps
	ast.WalkTerms(r, func(t *ast.Term) bool {
		switch v := t.Value.(type) {
		case ast.Var:
			d.input = d.input || v.Equal(ast.InputRootDocument.Value)
		case ast.Ref:
			if v.HasPrefix(ast.DefaultRootRef) {
				for i := 1; i < len(v) && i <= 2; i++ {
					if !v[i].IsGround() {
						d.input, d.other = true, true
					}
				}
			} else if impure(v) {
				d.other = true
			}
		}
		return d.input && d.other
	})
	return d
}

// impureBuiltins are name prefixes of built-ins whose answer can change
// between two calls with the same arguments without OPA marking them
// nondeterministic: the current time (token expiry, certificate
// validity), the network, the runtime's environment.
var impureBuiltins = []string{"time.now", "io.jwt.", "crypto.x509.parse_and_verify", "http.", "net.", "opa.", "rand.", "uuid."}

// impure reports whether ref names such a built-in, or one OPA marks
// nondeterministic.
func impure(ref ast.Ref) bool {
	name := ref.String()
	if b, ok := ast.BuiltinMap[name]; ok && b.Nondeterministic {
		return true
	}
	for _, p := range impureBuiltins {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
