package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// readsInput is readsInput of the policy's print-keeping compilation, so
// that a denial's print output shows the real input, cached per name.
func (p *Policy) readsInput(name string) bool {
	if v, ok := p.inputUse.Load(name); ok {
		return v.(bool)
	}
	reads := !validRuleName(name) || readsInput(p.verbose.compiler, name)
	p.inputUse.Store(name, reads)
	return reads
}

// readsInput reports whether deciding request name can read `input`: if
// neither the rules defining data.agent_policy.<name> nor any rule or
// function they reach mention input, the decision is the same for every
// input and the gate need not build one — the shipped policies decide most
// requests that way, and building a CreateContainer input costs more than
// such a decision. Any doubt counts as reading: a reference into data
// selected by a variable below the package might reach any rule.
func readsInput(c *ast.Compiler, name string) bool {
	ref := ast.MustParseRef(packagePath).Append(ast.StringTerm(name))
	seen := map[*ast.Rule]bool{}
	stack := c.GetRules(ref)
	for len(stack) > 0 {
		r := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if r == nil || seen[r] {
			continue
		}
		seen[r] = true
		if mentionsInput(r) {
			return true
		}
		stack = append(stack, r.Else)
		for dep := range c.Graph.Dependencies(r) {
			if d, ok := dep.(*ast.Rule); ok {
				stack = append(stack, d)
			}
		}
	}
	return false
}

// mentionsInput is true when r names input anywhere (a reference, a `with`
// target, a bare `input`), or refers to data through a variable within
// the package path, which the dependency graph cannot resolve to rules.
func mentionsInput(r *ast.Rule) bool {
	found := false
	ast.WalkTerms(r, func(t *ast.Term) bool {
		switch v := t.Value.(type) {
		case ast.Var:
			found = found || v.Equal(ast.InputRootDocument.Value)
		case ast.Ref:
			if v.HasPrefix(ast.DefaultRootRef) {
				for i := 1; i < len(v) && i <= 2; i++ {
					if !v[i].IsGround() {
						found = true
					}
				}
			}
		}
		return found
	})
	return found
}
