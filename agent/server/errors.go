package server

import (
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toStatus maps a domain error onto a ttrpc status with containerd's own
// mapping (errgrpc): errors that already carry a status keep it, errdefs
// classes and the context errors map to their codes, and anything else is
// Unknown with its message intact, so the runtime can still match on text
// such as "Link not found".
func toStatus(err error) error {
	err = errgrpc.ToGRPC(err)
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); !ok {
		return status.Error(codes.Unknown, err.Error())
	}
	return err
}
