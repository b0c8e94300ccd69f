package rpc

import (
	"context"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Health implements grpc.Health. It is never subject to policy.
type Health struct {
	// Version is the agent's version string.
	AgentVersion string
	// APIVersion is reported as grpc_version: the Kata protocol revision we speak.
	APIVersion string
}

var _ agentpb.HealthService = Health{}

// Check always reports SERVING: the agent only listens once it is ready.
func (Health) Check(context.Context, *agentpb.CheckRequest) (*agentpb.HealthCheckResponse, error) {
	return &agentpb.HealthCheckResponse{Status: agentpb.HealthCheckResponse_SERVING}, nil
}

// Version reports the agent and protocol versions.
func (h Health) Version(context.Context, *agentpb.CheckRequest) (*agentpb.VersionCheckResponse, error) {
	return &agentpb.VersionCheckResponse{AgentVersion: h.AgentVersion, GrpcVersion: h.APIVersion}, nil
}
