// Package safepath is the one place host-supplied names and paths are
// checked: identifiers, lexical prefix checks, joins that may never leave
// their root even through symlinks, and (beneath.go) the descriptor-based
// primitives for trees that may change while the agent works in them:
// OpenBeneath, MkdirBeneath and OpenMountPoint.
package safepath

import (
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// MaxID is the longest container, exec or sandbox id accepted.
const MaxID = 256

// MaxPath is the longest host-supplied path accepted.
const MaxPath = 4096

// ValidateID checks a container, exec or sandbox id from the host: non-empty,
// at most MaxID bytes, no '/', no NUL, not "." or "..".
func ValidateID(kind, id string) error {
	switch {
	case id == "":
		return errdefs.ErrInvalidArgument.WithMessage(kind + " id is empty")
	case len(id) > MaxID:
		return errs.Newf(errdefs.ErrInvalidArgument, "%s id is %d bytes long, more than %d", kind, len(id), MaxID)
	case id == "." || id == "..":
		return errs.Newf(errdefs.ErrInvalidArgument, "%s id %q is not allowed", kind, id)
	case strings.ContainsAny(id, "/\x00"):
		return errs.Newf(errdefs.ErrInvalidArgument, "%s id %q contains '/' or NUL", kind, id)
	}
	return nil
}

// Join resolves unsafe inside root as if root were "/": "..", absolute
// symlinks and symlinked parents all stay inside root. The result need not exist.
func Join(root, unsafe string) (string, error) {
	if err := checkPath(unsafe); err != nil {
		return "", err
	}
	p, err := securejoin.SecureJoin(root, unsafe)
	if err != nil {
		return "", errs.Newf(errdefs.ErrInvalidArgument, "path %q under %s: %v", unsafe, root, err)
	}
	return p, nil
}

// Within checks that an absolute, clean host-supplied path lies under one of
// the allowed prefixes, without resolving symlinks (callers that open the
// path must still use Join or openat2).
func Within(path string, prefixes ...string) error {
	if err := checkPath(path); err != nil {
		return err
	}
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return errs.Newf(errdefs.ErrInvalidArgument, "path %q must be absolute and clean", path)
	}
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			return nil
		}
	}
	return errs.Newf(errdefs.ErrPermissionDenied, "path %q is outside %s", path, strings.Join(prefixes, ", "))
}

func checkPath(p string) error {
	switch {
	case p == "":
		return errdefs.ErrInvalidArgument.WithMessage("path is empty")
	case len(p) > MaxPath:
		return errs.Newf(errdefs.ErrInvalidArgument, "path is %d bytes long, more than %d", len(p), MaxPath)
	case strings.ContainsRune(p, 0):
		return errs.Newf(errdefs.ErrInvalidArgument, "path %q contains NUL", p)
	}
	return nil
}
