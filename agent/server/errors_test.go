package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// The codes the Kata runtime sees for each class of domain error, and the
// texts it matches on, which must pass through unchanged.
func TestToStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{errs.Newf(errdefs.ErrInvalidArgument, "bad id %q", "x"), codes.InvalidArgument, `bad id "x"`},
		{fmt.Errorf("mount: %w", errdefs.ErrNotFound), codes.NotFound, "mount: not found"},
		{errdefs.ErrAlreadyExists.WithMessage("container c"), codes.AlreadyExists, "container c"},
		{errdefs.ErrPermissionDenied.WithMessage("blocked"), codes.PermissionDenied, "blocked"},
		{errdefs.ErrConflict.WithMessage("busy"), codes.FailedPrecondition, "busy"},
		{errdefs.ErrFailedPrecondition.WithMessage("not started"), codes.FailedPrecondition, "not started"},
		{errdefs.ErrUnavailable.WithMessage("log full"), codes.Unavailable, "log full"},
		{errdefs.ErrNotImplemented.WithMessage("no"), codes.Unimplemented, "no"},
		{errdefs.ErrResourceExhausted.WithMessage("too big"), codes.ResourceExhausted, "too big"},
		{errdefs.ErrInternal.WithMessage("oops"), codes.Internal, "oops"},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "wait: context deadline exceeded"},
		{context.Canceled, codes.Canceled, "context canceled"},
		{errors.New("Link not found"), codes.Unknown, "Link not found"},
		{status.Error(codes.Aborted, "kept"), codes.Aborted, "kept"},
	} {
		st, ok := status.FromError(toStatus(c.err))
		if !ok || st.Code() != c.code || st.Message() != c.msg {
			t.Errorf("%v: got %v %q, want %v %q", c.err, st.Code(), st.Message(), c.code, c.msg)
		}
	}
	if toStatus(nil) != nil {
		t.Error("nil error became a status")
	}
}
