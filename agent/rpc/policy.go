package rpc

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// SetPolicy replaces the policy in force. The server's gate has already
// checked the request against the current policy (as SetPolicyRequest with
// input {"policy": text}); the new policy starts with fresh state.
func (s *Service) SetPolicy(ctx context.Context, req *agentpb.SetPolicyRequest) (*emptypb.Empty, error) {
	if s.policy == nil {
		return nil, errdefs.ErrNotImplemented.WithMessage("SetPolicy: no policy engine configured")
	}
	if err := s.policy.SetPolicy(ctx, req.GetPolicy(), "SetPolicy"); err != nil {
		return nil, err
	}
	if s.onPolicy != nil {
		// The policy is already in force; a failed measurement must not look
		// like success, or a verifier would trust a log that omits it.
		if err := s.onPolicy(policy.Digest(req.GetPolicy())); err != nil {
			return nil, fmt.Errorf("SetPolicy: policy installed but not measured: %v: %w", err, errdefs.ErrInternal)
		}
	}
	return &emptypb.Empty{}, nil
}
