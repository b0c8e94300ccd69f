package errs

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
)

func TestNewfKeepsClassAndText(t *testing.T) {
	for _, c := range []Class{errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrPermissionDenied, errdefs.ErrUnavailable} {
		err := Newf(c, "container %q: %d mounts", "a", 3)
		if !errors.Is(err, c.(error)) {
			t.Errorf("%v: class lost", c)
		}
		if err.Error() != `container "a": 3 mounts` {
			t.Errorf("%v: text %q", c, err.Error())
		}
	}
	// Another class is not matched, so the rpc boundary cannot pick the wrong code.
	if errors.Is(Newf(errdefs.ErrNotFound, "x"), errdefs.ErrInvalidArgument) {
		t.Error("NotFound matched InvalidArgument")
	}
}
