package policy_test

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/input"
)

// errOpFailed stands for an operation that failed after its decision.
var errOpFailed = errors.New("operation failed")

// The gate may hand rules that never read input an empty one; for every
// agent request, under the shipped policies, the stateful test policy and
// (with -tags katacompat) Kata's generated rules, its verdict is the one the full input gets.
func TestGateVerdictIndependentOfInputShortcut(t *testing.T) {
	policies := map[string]string{"stateful": readFile(t, "testdata/stateful.rego")}
	for _, name := range policy.BuiltinNames() {
		policies[name] = builtin(t, name)
	}
	methods := agentMethods(t)
	if text, sandbox := kataPolicy(t); text != "" {
		policies["genpolicy"] = text
		methods["CreateContainer"] = sandbox
	}
	ctx := context.Background()
	for pname, text := range policies {
		p := load(t, text)
		e := policy.NewEngine(p, nil, nil)
		for m, req := range methods {
			doc, err := input.ForRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			name, err := input.RequestName(m)
			if err != nil {
				t.Fatal(err)
			}
			d, pend, evalErr := p.Decide(ctx, name, doc)
			if pend != nil {
				pend.Discard()
			}
			finish, gateErr := e.Gate(ctx, m, req)
			if finish != nil {
				finish(errOpFailed)
			}
			switch {
			case evalErr != nil:
				if !errdefs.IsInternal(gateErr) {
					t.Errorf("%s / %s: evaluate failed (%v), gate gave %v", pname, m, evalErr, gateErr)
				}
			case d.Allowed && gateErr != nil, !d.Allowed && !errdefs.IsPermissionDenied(gateErr):
				t.Errorf("%s / %s: evaluate allowed=%v, gate %v", pname, m, d.Allowed, gateErr)
			}
		}
	}
}
