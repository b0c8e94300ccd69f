// Package policy enforces Kata-compatible agent policies: Rego modules in
// package agent_policy whose rules, one per request message name, decide
// every AgentService request. It owns loading (Rego v1, or v0 as Kata's
// genpolicy writes it), evaluation with prepared queries, the policy state
// document that rules update through JSON Patch, the decision log, and the
// policies shipped with the agent.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// MaxPolicySize bounds a policy's text; generated policies for large pods
// run to a few hundred KiB.
const MaxPolicySize = 16 << 20

// packagePath is the package every agent policy must declare.
const packagePath = "data.agent_policy"

// moduleFile names the policy module inside the compiler; it shows up in
// compile errors.
const moduleFile = "policy.rego"

// compiled is a policy module compiled twice. Rego print() calls are
// rewritten into comprehensions that render their operands — genpolicy's
// rules print the whole input and dozens of intermediate values per
// CreateContainer — which made printing most of the cost of a decision.
// Kata only reports print output for denials, so decisions run against
// quiet, with print calls erased, and a denial is evaluated again against
// verbose to collect its output.
type compiled struct {
	quiet, verbose *ast.Compiler
}

// compile parses text as Rego v1 and, failing that, as Rego v0 (what Kata's
// genpolicy emits: `import future.keywords...`, rules without `if`), checks
// the package and compiles it with and without print statements. Both
// compilations must succeed, so a policy loads exactly when it would with
// print statements kept.
func compile(text string) (compiled, error) {
	if len(text) > MaxPolicySize {
		return compiled{}, fmt.Errorf("policy of %d bytes exceeds %d", len(text), MaxPolicySize)
	}
	mod, err := ast.ParseModuleWithOpts(moduleFile, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		m0, err0 := ast.ParseModuleWithOpts(moduleFile, text, ast.ParserOptions{RegoVersion: ast.RegoV0})
		if err0 != nil {
			return compiled{}, fmt.Errorf("parse policy: not Rego v1 (%v), nor Rego v0 (%v)", err, err0)
		}
		mod = m0
	}
	if mod == nil {
		return compiled{}, fmt.Errorf("parse policy: empty module")
	}
	if got := mod.Package.Path.String(); got != packagePath {
		return compiled{}, fmt.Errorf("policy declares package %s, want package agent_policy", trimData(got))
	}
	var out compiled
	// The compiler copies the modules it is given, so one parse serves both.
	for _, c := range []struct {
		dst   **ast.Compiler
		print bool
	}{{&out.verbose, true}, {&out.quiet, false}} {
		comp := ast.NewCompiler().WithEnablePrintStatements(c.print)
		comp.Compile(map[string]*ast.Module{moduleFile: mod})
		if comp.Failed() {
			return compiled{}, fmt.Errorf("compile policy: %w", comp.Errors)
		}
		*c.dst = comp
	}
	return out, nil
}

func trimData(path string) string {
	if len(path) > 5 && path[:5] == "data." {
		return path[5:]
	}
	return path
}

// Digest is the hex sha256 of a policy text, as recorded in the decision log.
func Digest(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}
