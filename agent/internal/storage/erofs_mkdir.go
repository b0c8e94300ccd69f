package storage

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
)

// X-kata.mkdir.path directives (agent/storage/erofs mkdir.go) name
// directories to create in a group's upper mount, <run dir>/<id>/
// multi-layer/upper, before the overlay is mounted: containerd asks for
// the overlay's upper/ and work/ there. The upper mount is the guest's own
// (guest memory, or the upper disk formatted afresh), so nothing in it is
// the host's; still, every directory is made through descriptors below
// the upper mount (safepath.MkdirBeneath: no symlink followed, no ".."),
// with mode 0755 and the agent's ownership whatever the directive asks.
// Kata's agent ignores the mode and ids too (multi_layer_erofs.rs:713-729
// keeps only the path); here honouring them would let the host choose the
// mode of upper/, which is the container's "/".

// The overlay's directories in the upper mount (erofs_layers.go).
const (
	upperDirName = "upper"
	workDirName  = "work"
)

// checkMkdirs refuses what the group's directives cannot do: any at all
// for a plain verified storage (it has no upper), more than the bound
// over the whole group, or a directory inside the overlay's upper or work
// directory. One in upper/ would be part of the container's root: over a
// lower file of the same name it hides that file, over a lower directory
// it replaces the directory's mode and owner with its own, so the host
// would change what the pinned root hashes vouch for. upper/ and work/
// themselves, and anything else in the upper mount, the container never
// sees.
func checkMkdirs(owner string, set layerSet) error {
	if len(set.mkdirs) == 0 {
		return nil
	}
	if set.plain {
		return invalid("container %s: %s directives on a plain verified EROFS storage, which has no upper to create them in", owner, erofs.OptMkdirPath)
	}
	if len(set.mkdirs) > erofs.MaxMkdirs {
		return invalid("container %s: %d %s directives, at most %d", owner, len(set.mkdirs), erofs.OptMkdirPath, erofs.MaxMkdirs)
	}
	for _, d := range set.mkdirs {
		first, rest, _ := strings.Cut(d.Path, "/")
		if (first == upperDirName || first == workDirName) && rest != "" {
			return denied("container %s: %s%s/%s would create a directory in the container's root above the verified layers (hiding or changing what they hold); refusing it",
				owner, erofs.OptMkdirPath, erofs.MountUpper, d.Path)
		}
	}
	return nil
}

// makeDirs creates the directives' directories below upperMount.
func (g *layerGroup) makeDirs(upperMount string, dirs []erofs.MkdirDirective) error {
	if len(dirs) == 0 {
		return nil
	}
	t, err := g.b.roots.prepare(upperMount, false)
	if err != nil {
		return fmt.Errorf("%s: %w", erofs.OptMkdirPath, err)
	}
	defer t.close()
	for _, d := range dirs {
		fd, _, err := safepath.MkdirBeneath(t.mp.Fd(), d.Path, 0o755, nil)
		switch {
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
			return denied("%s%s/%s goes through a symlink in the upper; refusing it", erofs.OptMkdirPath, erofs.MountUpper, d.Path)
		case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EEXIST):
			return invalid("%s%s/%s: a file is in the way of the directory", erofs.OptMkdirPath, erofs.MountUpper, d.Path)
		case err != nil:
			return fmt.Errorf("%s%s/%s: %w", erofs.OptMkdirPath, erofs.MountUpper, d.Path, err)
		}
		unix.Close(fd)
	}
	return nil
}
