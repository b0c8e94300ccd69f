// Package unpack extracts one image layer (an uncompressed tar stream) into a
// directory in overlayfs format, in a single streaming pass. It owns the path
// safety of layer contents: every entry is created relative to directory file
// descriptors opened with safepath.OpenBeneath and MkdirBeneath, which refuse
// symlinks and "..", so a hostile layer cannot write outside its directory or
// through a symlink.
package unpack

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
)

// Defaults used when Options leaves a bound at zero.
const (
	DefaultMaxBytes   int64 = 32 << 30
	DefaultMaxEntries       = 1 << 20
)

// Overlay whiteout conventions of the OCI layer format.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
	xattrPAXPrefix = "SCHILY.xattr."
)

// ErrUnsafe classes entries refused for safety (escapes, devices, forged
// overlay attributes); it wraps errdefs.ErrPermissionDenied.
var ErrUnsafe = fmt.Errorf("unsafe layer entry: %w", errdefs.ErrPermissionDenied)

// ErrTooLarge means a decompression bound was hit.
var ErrTooLarge = fmt.Errorf("layer exceeds unpack limits: %w", errdefs.ErrInvalidArgument)

// Options bound and shape one unpack.
type Options struct {
	// MaxBytes bounds the uncompressed stream (headers, data, padding) and,
	// separately, the total size of the files written: a sparse entry's
	// holes cost no stream bytes but are still written out.
	MaxBytes int64
	// MaxEntries bounds the number of tar entries.
	MaxEntries int
	// AllowDevices permits character and block device nodes other than
	// whiteouts. Off by default: a layer has no business creating
	// /dev/mem in a confidential guest.
	AllowDevices bool
}

// Stats describes a finished unpack.
type Stats struct {
	Entries int
	Bytes   int64
}

// Unpack extracts the tar stream r into dir, which must exist. It reads r
// to its end even after the tar end marker, so a caller hashing r sees the
// whole stream. A stream that ends cleanly at an entry boundary without the
// end-of-archive blocks is accepted (umoci writes such layers).
func Unpack(ctx context.Context, r io.Reader, dir string, o Options) (Stats, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	rootFD, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("open layer dir %s: %w", dir, err)
	}
	defer unix.Close(rootFD)
	cr := &countingReader{r: r, max: o.MaxBytes}
	u := &unpacker{root: rootFD, o: o, buf: make([]byte, 256<<10), lastFD: -1}
	defer u.forget()
	st, err := u.run(ctx, tar.NewReader(cr))
	st.Bytes = cr.n
	if err != nil {
		return st, err
	}
	// Trailing zero blocks and padding belong to the diff_id too.
	if _, err := io.CopyBuffer(io.Discard, cr, u.buf); err != nil {
		return st, fmt.Errorf("read layer trailer: %w", err)
	}
	st.Bytes = cr.n
	return st, nil
}

type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, fmt.Errorf("more than %d uncompressed bytes: %w", c.max, ErrTooLarge)
	}
	return n, err
}

type dirTimes struct {
	parent, base string
	ts           [2]unix.Timespec
}

type unpacker struct {
	root int
	o    Options
	buf  []byte
	dirs []dirTimes
	// Entries of one directory come together in a tar: keep the last
	// parent open instead of walking the path again for every entry.
	// Dropped whenever an entry removes or replaces something.
	lastRel string
	lastFD  int
	// declared is the sum of the entries' declared sizes so far.
	declared int64
}

func (u *unpacker) forget() {
	if u.lastFD >= 0 {
		unix.Close(u.lastFD)
	}
	u.lastRel, u.lastFD = "", -1
}

func (u *unpacker) run(ctx context.Context, tr *tar.Reader) (Stats, error) {
	var st Stats
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return st, err
			}
			return st, fmt.Errorf("read tar entry %d: %w", st.Entries, errdefs.ErrInvalidArgument.WithMessage(err.Error()))
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		st.Entries++
		if st.Entries > u.o.MaxEntries {
			return st, fmt.Errorf("more than %d entries: %w", u.o.MaxEntries, ErrTooLarge)
		}
		if hdr.Size < 0 || hdr.Size > u.o.MaxBytes-u.declared {
			return st, fmt.Errorf("entry %q: files larger than %d bytes in all: %w", hdr.Name, u.o.MaxBytes, ErrTooLarge)
		}
		u.declared += hdr.Size
		if err := u.entry(hdr, tr); err != nil {
			return st, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	// Directory times last: creating children changed them.
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		pfd, err := u.openDir(d.parent, false)
		if err != nil {
			return st, err
		}
		err = unix.UtimesNanoAt(pfd, d.base, d.ts[:], unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(pfd)
		if err != nil {
			return st, fmt.Errorf("set times of %s: %w", path.Join(d.parent, d.base), err)
		}
	}
	return st, nil
}

// cleanName turns a tar entry name into a relative, clean path; "" is the
// layer root. Absolute names ("/", "/bin/sh": umoci insert writes them) are
// rooted at the layer root, as containerd and the Rust tar crate do. ".."
// components are refused outright rather than reinterpreted, in either
// spelling.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("empty name: %w", ErrUnsafe)
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("name contains NUL: %w", ErrUnsafe)
	}
	name = strings.TrimLeft(name, "/")
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("path contains \"..\": %w", ErrUnsafe)
		}
	}
	c := path.Clean(name)
	if c == "." || c == "" {
		return "", nil
	}
	return c, nil
}

func split(rel string) (parent, base string) {
	parent, base = path.Split(rel)
	return strings.TrimSuffix(parent, "/"), base
}

func (u *unpacker) entry(hdr *tar.Header, tr *tar.Reader) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		// The layer root itself: only its metadata can change.
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("root entry is not a directory: %w", ErrUnsafe)
		}
		return u.meta(u.root, hdr)
	}
	parent, base := split(rel)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(parent, base)
	}
	pfd, err := u.openDir(parent, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)

	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.dir(pfd, parent, base, hdr)
	case tar.TypeReg, tar.TypeRegA:
		return u.file(pfd, base, hdr, tr)
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
			return fmt.Errorf("bad symlink target: %w", ErrUnsafe)
		}
		if err := u.clear(pfd, base); err != nil {
			return err
		}
		// The target is stored as is: it is resolved later inside the
		// container's root, and we never follow it here.
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		return u.owner(pfd, base, hdr, true)
	case tar.TypeLink:
		return u.hardlink(pfd, base, hdr)
	case tar.TypeChar, tar.TypeBlock:
		if !u.o.AllowDevices {
			return fmt.Errorf("device node refused (devices are not allowed in layers): %w", ErrUnsafe)
		}
		kind := uint32(unix.S_IFCHR)
		if hdr.Typeflag == tar.TypeBlock {
			kind = unix.S_IFBLK
		}
		return u.node(pfd, base, hdr, kind, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
	case tar.TypeFifo:
		return u.node(pfd, base, hdr, unix.S_IFIFO, 0)
	case tar.TypeXGlobalHeader:
		return nil
	}
	return fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, errdefs.ErrInvalidArgument)
}

// openDir opens rel (relative to the layer root) as a directory without
// following any symlink, creating missing components when create is set.
func (u *unpacker) openDir(rel string, create bool) (int, error) {
	if rel != "" && rel == u.lastRel && u.lastFD >= 0 {
		return unix.Dup(u.lastFD)
	}
	if rel == "" {
		return unix.Dup(u.root)
	}
	fd, err := safepath.OpenBeneath(u.root, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) && create {
		fd, _, err = safepath.MkdirBeneath(u.root, rel, 0o755, nil)
	}
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return -1, fmt.Errorf("parent %s goes through a symlink: %w", rel, ErrUnsafe)
	case errors.Is(err, unix.ENOTDIR):
		return -1, fmt.Errorf("parent %s is not a directory: %w", rel, errdefs.ErrInvalidArgument)
	case err != nil:
		return -1, fmt.Errorf("open parent %s: %w", rel, err)
	}
	if c, err := unix.Dup(fd); err == nil {
		u.forget()
		u.lastRel, u.lastFD = rel, c
	}
	return fd, nil
}
