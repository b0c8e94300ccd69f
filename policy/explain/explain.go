// Package explain says, in one line a person can act on, why an agent
// policy denied a request: which rule decided and the first field or
// condition that made it deny.
//
// Two readings are tried. For a CreateContainerRequest checked against a
// genpolicy-shaped policy (policy_data.containers entries holding an OCI
// spec), the request is compared with every container entry the way the
// genpolicy rules compare them; the entry with the most matching checks is
// reported with the first check that failed, e.g.
// `OCI.Process.Args[1]: got "sh", policy allows "echo"`. Otherwise, and
// when that comparison finds nothing wrong, the rule bodies of the request
// are evaluated condition by condition and the first condition no binding
// satisfies is reported with the input values it reads.
//
// The package does not decide anything: callers evaluate the policy first
// and ask for an explanation only for a denial, so allowed decisions pay
// nothing for it.
package explain

import (
	"context"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
)

// packagePath is the package of every agent policy.
const packagePath = "data.agent_policy"

// Finding is the reason for one denial.
type Finding struct {
	// Rule is the rule that decided (the request name, or a sub-rule).
	Rule string
	// Location is the policy's file:line of the condition that failed,
	// empty when the finding is about a field.
	Location string
	// Container is the index of the closest policy_data.containers entry,
	// -1 when the policy has none.
	Container int
	// Checks and Passed count the closest entry's comparisons.
	Checks, Passed int
	// Field names what differed: a request field such as
	// OCI.Process.Args[1], or the failing condition's source text.
	Field string
	// Detail is what was found against what the policy allows.
	Detail string
}

// String renders the finding on one line.
func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(f.Rule)
	if f.Container >= 0 {
		fmt.Fprintf(&b, ": closest policy_data.containers[%d] (%d of %d checks pass)", f.Container, f.Passed, f.Checks)
	}
	if f.Location != "" {
		b.WriteString(": " + f.Location)
	}
	if f.Field != "" {
		b.WriteString(": " + f.Field)
	}
	if f.Detail != "" {
		b.WriteString(": " + f.Detail)
	}
	return oneLine(b.String())
}

// Evaluator explains denials of one compiled policy. Compiler is the
// policy's compiled module (package agent_policy); Store holds its data
// document, state included.
type Evaluator struct {
	Compiler *ast.Compiler
	Store    storage.Store
}

// Why explains why kind was denied for in (the request in the policy-input
// shape). It never fails: what cannot be worked out is said in the finding.
func (e Evaluator) Why(ctx context.Context, kind string, in ast.Value) Finding {
	if kind == "CreateContainerRequest" {
		if f, ok := e.closestContainer(ctx, in); ok {
			return f
		}
	}
	return e.ruleFinding(ctx, kind, in)
}

// maxValue bounds how much of a value a finding quotes.
const maxValue = 120

// quote renders a value as compact JSON, shortened to maxValue.
func quote(v any) string {
	var s string
	switch x := v.(type) {
	case ast.Value:
		s = x.String()
	case string:
		s = fmt.Sprintf("%q", x)
	default:
		t, err := ast.InterfaceToValue(v)
		if err != nil {
			s = fmt.Sprint(v)
		} else {
			s = t.String()
		}
	}
	return shorten(s)
}

func shorten(s string) string {
	s = oneLine(s)
	if len(s) > maxValue {
		return s[:maxValue-3] + "..."
	}
	return s
}

// oneLine folds newlines and tabs so that a finding stays on one line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
}
