package server

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toStatus maps a domain error onto a ttrpc status. Errors that already carry
// a status keep it; errdefs classes map to their codes; anything else is
// Unknown with its message intact, so the runtime can still match on text
// such as "Link not found".
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	for _, m := range errorCodes {
		if m.is(err) {
			code = m.code
			break
		}
	}
	return status.Error(code, err.Error())
}

var errorCodes = []struct {
	is   func(error) bool
	code codes.Code
}{
	{errdefs.IsInvalidArgument, codes.InvalidArgument},
	{errdefs.IsNotFound, codes.NotFound},
	{errdefs.IsAlreadyExists, codes.AlreadyExists},
	{errdefs.IsPermissionDenied, codes.PermissionDenied},
	{errdefs.IsFailedPrecondition, codes.FailedPrecondition},
	{errdefs.IsConflict, codes.FailedPrecondition},
	{errdefs.IsUnavailable, codes.Unavailable},
	{errdefs.IsNotImplemented, codes.Unimplemented},
	{errdefs.IsResourceExhausted, codes.ResourceExhausted},
	{errdefs.IsAborted, codes.Aborted},
	{errdefs.IsOutOfRange, codes.OutOfRange},
	{errdefs.IsDataLoss, codes.DataLoss},
	{errdefs.IsUnauthorized, codes.Unauthenticated},
	{func(e error) bool { return errors.Is(e, context.DeadlineExceeded) }, codes.DeadlineExceeded},
	{func(e error) bool { return errors.Is(e, context.Canceled) }, codes.Canceled},
	{errdefs.IsInternal, codes.Internal},
}
