package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/containerd/errdefs"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/internal/errs"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Input fields the agent adds to what the request carries, so that a rule
// can decide on what only the agent knows (docs/observability.md).
const (
	// InputExecGrant, on ExecProcessRequest: the verified owner-signed
	// grant the request presents, absent when it presents none.
	InputExecGrant = "cocoon_exec_grant"
	// InputLogs, on ReadStreamRequest: "seal" when the stream carries
	// only ciphertext, else "plain".
	InputLogs = "cocoon_logs"
	// InputMetrics, on GetMetricsRequest: "full" or "aggregate", the set
	// GetMetrics would return.
	InputMetrics = "cocoon_metrics"
)

// NoncePath is where, in policy state, the engine records the nonce of
// each exec grant it accepts, with the grant's expiry (Unix seconds).
const NoncePath = "/pstate/cocoon_exec_nonces"

// ExecGrant is a verified exec grant as the gate needs it.
type ExecGrant struct {
	Nonce   string
	Expires int64
	// Input is what the policy sees as input.cocoon_exec_grant.
	Input map[string]any
	// Admit hands the grant to the handler that runs next, once the
	// policy allowed the request; release takes it back when the request
	// finished, whatever happened.
	Admit func() (release func())
}

// Observer is what the agent knows about a request beyond its fields: the
// owner's observability settings (initdata cocoon.toml) and the state of
// the containers. Refusals it returns are final: the policy cannot
// override them, not even with AllowRequestsFailingPolicy.
type Observer interface {
	// ExecGrant verifies the owner-signed grant an ExecProcess presents.
	// It returns nil for a request the policy decides as it is, or a
	// refusal: a grant that does not verify, or an exec the container's
	// mode does not allow.
	ExecGrant(ctx context.Context, containerID, execID string, args []string) (*ExecGrant, error)
	// StreamMode is "seal", "plain" or "deny" (refused as end of stream)
	// for a process's output.
	StreamMode(containerID, execID string) string
	// MetricsMode is "full", "aggregate" or "none" (refused).
	MetricsMode() string
}

type observerBox struct{ o Observer }

// SetObserver installs the agent's observer; call it before serving.
func (e *Engine) SetObserver(o Observer) { e.observer.Store(&observerBox{o}) }

// observe adds the observer's fields to in, or refuses. grant is the
// verified exec grant, if any. changed says in now differs from the
// request.
func (e *Engine) observe(ctx context.Context, name string, msg proto.Message, in ast.Value) (grant *ExecGrant, changed bool, err error) {
	box := e.observer.Load()
	obj, ok := in.(ast.Object)
	if box == nil || !ok {
		return nil, false, nil
	}
	o := box.o
	set := func(k string, v any) error {
		t, err := ast.InterfaceToValue(v)
		if err != nil {
			return err
		}
		obj.Insert(ast.StringTerm(k), ast.NewTerm(t))
		changed = true
		return nil
	}
	switch r := msg.(type) {
	case *agentpb.ExecProcessRequest:
		var args []string
		if r.Process != nil {
			args = r.Process.Args
		}
		g, err := o.ExecGrant(ctx, r.ContainerId, r.ExecId, args)
		if err != nil || g == nil {
			return nil, false, err
		}
		return g, true, set(InputExecGrant, g.Input)
	case *agentpb.ReadStreamRequest:
		mode := o.StreamMode(r.ContainerId, r.ExecId)
		if mode == "deny" {
			return nil, false, errs.Newf(errdefs.ErrPermissionDenied, "%s is blocked: the owner's cocoon.toml denies this container's logs", name)
		}
		return nil, true, set(InputLogs, mode)
	case *agentpb.GetMetricsRequest:
		mode := o.MetricsMode()
		if mode == "none" {
			return nil, false, errs.Newf(errdefs.ErrPermissionDenied, "%s is blocked: the owner's cocoon.toml denies metrics", name)
		}
		return nil, true, set(InputMetrics, mode)
	}
	return nil, false, nil
}

// decideGrant decides a request that presents a verified exec grant. It
// holds the ops lock from before the nonce is looked up until the request
// finishes (Pending), so two requests with one nonce cannot both pass.
// A nonce already in state is refused whatever the policy says; an
// allowed grant's nonce is added to state by the decision's ops, after
// the rule's own, and nonces past their expiry are dropped.
func (p *Policy) decideGrant(ctx context.Context, name string, in ast.Value, g *ExecGrant, now time.Time) (Decision, *Pending, error) {
	p.opsMu.Lock()
	locked := true
	defer func() {
		if locked {
			p.opsMu.Unlock()
		}
	}()
	used, err := nonces(p.State())
	if err != nil {
		return Decision{Name: name}, nil, err
	}
	if _, ok := used[g.Nonce]; ok {
		return Decision{Name: name, Why: fmt.Sprintf("exec grant already used (nonce %s)", g.Nonce)}, nil, nil
	}
	d, err := p.decide(ctx, name, in, false)
	if err != nil || !d.Allowed {
		return d, nil, err
	}
	var ops []map[string]any
	if len(d.Ops) > 0 {
		if err := json.Unmarshal(d.Ops, &ops); err != nil {
			return d, nil, fmt.Errorf("ops: %w", err)
		}
	}
	if used == nil {
		ops = append(ops, map[string]any{"op": "add", "path": NoncePath, "value": map[string]any{}})
	}
	var expired []string
	for n, exp := range used {
		if exp <= now.Unix() {
			expired = append(expired, n)
		}
	}
	sort.Strings(expired) // the ops are in the decision log: keep them stable
	for _, n := range expired {
		ops = append(ops, map[string]any{"op": "remove", "path": NoncePath + "/" + n})
	}
	ops = append(ops, map[string]any{"op": "add", "path": NoncePath + "/" + g.Nonce, "value": g.Expires})
	raw, err := json.Marshal(ops)
	if err != nil {
		return d, nil, err
	}
	d.Ops = raw
	next, err := p.patched(raw)
	if err != nil {
		return d, nil, err
	}
	locked = false
	return d, &Pending{p: p, next: next}, nil
}

// nonces reads the accepted grants' nonces from state: nil when none was
// ever recorded.
func nonces(state []byte) (map[string]int64, error) {
	var doc struct {
		Pstate struct {
			Nonces map[string]int64 `json:"cocoon_exec_nonces"`
		} `json:"pstate"`
	}
	if err := json.Unmarshal(state, &doc); err != nil {
		return nil, fmt.Errorf("policy state: %w", err)
	}
	return doc.Pstate.Nonces, nil
}
