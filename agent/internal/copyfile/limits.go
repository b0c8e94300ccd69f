package copyfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Default per-sandbox bounds. Kubernetes caps a config map or secret at
// 1 MiB and a pod mounts a handful; the guest's /run is a tmpfs of half its
// memory, so a few hundred MiB is ample and leaves the rest to the pod.
const (
	DefaultMaxTotalBytes = 256 << 20
	DefaultMaxFiles      = 16384
)

// Limits bound what CopyFile stores under its root, which serves one
// sandbox. Zero fields take their defaults.
type Limits struct {
	// MaxFileSize bounds one file's file_size (DefaultMaxFileSize).
	MaxFileSize int64
	// MaxTotalBytes bounds the regular files' bytes, uploads in progress
	// included (DefaultMaxTotalBytes).
	MaxTotalBytes int64
	// MaxFiles bounds the entries of any kind (DefaultMaxFiles).
	MaxFiles int
}

// usage is what the root holds. It is kept as we write and may overstate
// (others remove containers' directories, replaced trees are not counted
// down); a request that would pass a bound first rescans the root.
type usage struct {
	known bool
	files int
	bytes int64
}

func (u *usage) stale() { u.known = false }

func (u *usage) release(files int, bytes int64) {
	u.files -= files
	u.bytes -= bytes
}

func regularSize(st *unix.Stat_t) int64 {
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		return st.Size
	}
	return 0
}

// reserve accounts for files new entries and bytes more of file data, or
// refuses with RESOURCE_EXHAUSTED when that passes a bound.
func (c *Copier) reserve(name string, files int, bytes int64) error {
	fits := func() bool {
		return c.use.files+files <= c.lim.MaxFiles && c.use.bytes+bytes <= c.lim.MaxTotalBytes
	}
	if !c.use.known || !fits() {
		if err := c.rescan(); err != nil {
			return err
		}
	}
	switch {
	case c.use.bytes+bytes > c.lim.MaxTotalBytes:
		return errs.Newf(errdefs.ErrResourceExhausted,
			"copy file %q: %d more bytes would pass the sandbox's CopyFile limit of %d bytes (%d in use)", name, bytes, c.lim.MaxTotalBytes, c.use.bytes)

	case c.use.files+files > c.lim.MaxFiles:
		return errs.Newf(errdefs.ErrResourceExhausted,
			"copy file %q: the sandbox's CopyFile limit of %d entries is reached (%d in use)", name, c.lim.MaxFiles, c.use.files)

	}
	c.use.files += files
	c.use.bytes += bytes
	return nil
}

// rescan counts what is under the root now, without following symlinks.
func (c *Copier) rescan() error {
	var u usage
	err := filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk
			}
			return err
		}
		if p == c.root {
			return nil
		}
		u.files++
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err == nil {
				u.bytes += info.Size()
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy file: counting what %s holds: %w", c.root, err)
	}
	u.known = true
	c.use = u
	return nil
}
