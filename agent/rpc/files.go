package rpc

import (
	"context"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/agent/internal/convert"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// CopyFile writes one chunk, directory or symlink under the shared directory.
func (s *Service) CopyFile(ctx context.Context, r *agentpb.CopyFileRequest) (*emptypb.Empty, error) {
	if s.system.Files == nil {
		return nil, errdefs.ErrNotImplemented.WithMessage("CopyFile is not configured in this agent")
	}
	if err := s.system.Files.Copy(ctx, convert.CopyFileFromProto(r)); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}
