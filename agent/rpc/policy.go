package rpc

import (
	"context"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// SetPolicy replaces the policy in force. The server's gate has already
// checked the request; the engine installs and measures the new policy
// (policy.Engine.SetPolicy).
func (s *Service) SetPolicy(ctx context.Context, req *agentpb.SetPolicyRequest) (*emptypb.Empty, error) {
	if s.policy == nil {
		return nil, errdefs.ErrNotImplemented.WithMessage("SetPolicy: no policy engine configured")
	}
	if err := s.policy.SetPolicy(ctx, req.GetPolicy(), "SetPolicy"); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}
