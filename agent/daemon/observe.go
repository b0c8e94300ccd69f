package daemon

import (
	"context"
	"time"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/policy"
)

// observer lets the policy gate see what the sandbox knows about a request
// (policy.Observer): the exec grant it presents, verified here once, whether
// a stream is sealed, which metrics GetMetrics returns.
type observer struct{ pod *sandbox.Sandbox }

func (o observer) ExecGrant(_ context.Context, cid, execID string, args []string) (*policy.ExecGrant, error) {
	g, err := o.pod.VerifyExecGrant(cid, args, time.Now())
	if err != nil || g == nil {
		return nil, err
	}
	argv := make([]any, len(g.Argv))
	for i, a := range g.Argv {
		argv[i] = a
	}
	token := args[1]
	return &policy.ExecGrant{
		Nonce:   g.Nonce,
		Expires: g.Expires,
		Input: map[string]any{
			"verified": true, "pod": g.Pod, "container": g.Container, "argv": argv,
			"nonce": g.Nonce, "issued_at": g.IssuedAt, "expires": g.Expires,
		},
		Admit: func() func() { return o.pod.AdmitExecGrant(cid, execID, token, g) },
	}, nil
}

func (o observer) StreamMode(cid, execID string) string { return o.pod.StreamMode(cid, execID) }

func (o observer) MetricsMode() string { return string(o.pod.ObserveConfig().Metrics) }
