// Package rpc adapts the Kata agent ttrpc API onto cocoon's domain packages.
// Handlers decode, call the domain and return; errors keep their errdefs
// class and are turned into ttrpc status codes by the server, never here.
// Policy is enforced by the server's interceptor chain, not in handlers.
package rpc

import (
	"log/slog"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Service implements grpc.AgentService: it defines every rpc, so a new rpc
// in Kata's protos fails the build here until it is handled.
type Service struct {
	log    *slog.Logger
	policy *policy.Engine
	// sandbox and afterDestroy serve the container lifecycle rpcs.
	sandbox      *sandbox.Sandbox
	afterDestroy func()
	// system serves networking, guest management, CopyFile and metrics.
	system System
}

var _ agentpb.AgentServiceService = (*Service)(nil)

// Deps are the domain objects the service adapts.
type Deps struct {
	Log *slog.Logger
	// Policy is the engine SetPolicy replaces the policy of; nil refuses SetPolicy.
	Policy *policy.Engine
	// Sandbox runs the pod's containers; nil answers their rpcs Unimplemented.
	Sandbox *sandbox.Sandbox
	// AfterDestroy, when set, runs once DestroySandbox has answered (the
	// daemon powers the VM off there when the agent is PID 1).
	AfterDestroy func()
	// System holds the guest-wide domain objects (see System).
	System System
}

// New returns the AgentService implementation over deps.
func New(d Deps) *Service {
	return &Service{log: d.Log, policy: d.Policy, sandbox: d.Sandbox, afterDestroy: d.AfterDestroy, system: d.System}
}
