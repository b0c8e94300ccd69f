// Package copyfile implements CopyFile: the runtime pushes files (hostname,
// resolv.conf, secrets, config maps) into the guest when there is no shared
// file system. Everything lands under one root directory; every path
// component is opened through safepath.OpenBeneath or MkdirBeneath relative
// to its parent, which refuse symlinks and "..", so neither
// "..", nor a symlink planted by an earlier request, nor a symlinked parent
// can make a write land outside the root. Regular files are written to a
// temporary sibling and renamed into place on their last chunk, so a reader
// never sees a half-written file.
//
// What CopyFile stores lives in the guest's memory (a tmpfs), so the total
// is bounded per sandbox, in bytes and in entries (see Limits): a request
// that would pass a bound is refused with RESOURCE_EXHAUSTED before
// anything already stored is touched.
package copyfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// MaxChunk is the largest data field accepted in one request. The runtime
// sends files in chunks well below the 4 MiB ttrpc message limit.
const MaxChunk = 4 << 20

// DefaultMaxFileSize bounds file_size unless the Copier is told otherwise:
// config maps and secrets are at most 1 MiB in Kubernetes, images never
// travel this way.
const DefaultMaxFileSize = 64 << 20

// maxDepth bounds both the path and recursive removal.
const maxDepth = 128

// Kata masks: implicit parents get rwx bits only, the target may carry
// setuid/setgid/sticky.
const (
	dirPermMask  = 0o777
	filePermMask = 0o7777
)

// Copier writes CopyFile requests under Root.
type Copier struct {
	root string
	lim  Limits
	// mu serialises requests, so the usage checked is the usage written.
	mu  sync.Mutex
	use usage
}

// New returns a Copier confined to root (normally
// <KataRunDir>/shared/containers) with the default limits.
// maxFileSize <= 0 means DefaultMaxFileSize.
func New(root string, maxFileSize int64) *Copier {
	return NewLimited(root, Limits{MaxFileSize: maxFileSize})
}

// NewLimited returns a Copier confined to root with the given limits;
// zero fields take their defaults.
func NewLimited(root string, l Limits) *Copier {
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = DefaultMaxFileSize
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	return &Copier{root: path.Clean(root), lim: l}
}

// Root is the directory every copy lands in.
func (c *Copier) Root() string { return c.root }

func invalid(format string, a ...any) error {
	return errs.Newf(errdefs.ErrInvalidArgument, format, a...)
}

// kind is the file type requested through file_mode's S_IFMT bits.
type kind int

const (
	regular kind = iota
	directory
	symlink
)

// check validates the request and returns the path components under root.
func (c *Copier) check(req *Request) ([]string, kind, error) {
	if req == nil {
		return nil, 0, invalid("copy file request is null")
	}
	if err := safepath.Within(req.Path, c.root); err != nil {
		return nil, 0, fmt.Errorf("copy file: %w", err)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(req.Path, c.root), "/")
	if rel == "" {
		return nil, 0, invalid("copy file: path %q is the shared directory itself", req.Path)
	}
	parts := strings.Split(rel, "/")
	if len(parts) > maxDepth {
		return nil, 0, invalid("copy file: path %q is deeper than %d", req.Path, maxDepth)
	}
	for _, p := range parts {
		if len(p) > unix.NAME_MAX {
			return nil, 0, invalid("copy file: component %.32q... is longer than %d bytes", p, unix.NAME_MAX)
		}
	}
	var k kind
	switch req.FileMode & unix.S_IFMT {
	case 0, unix.S_IFREG:
		k = regular
	case unix.S_IFDIR:
		k = directory
	case unix.S_IFLNK:
		k = symlink
	default:
		return nil, 0, invalid("copy file: %s: file type %#o is not a regular file, directory or symlink", req.Path, req.FileMode&unix.S_IFMT)
	}
	if req.UID < -1 || req.GID < -1 {
		return nil, 0, invalid("copy file: %s: uid %d / gid %d out of range", req.Path, req.UID, req.GID)
	}
	if len(req.Data) > MaxChunk {
		return nil, 0, invalid("copy file: %s: chunk of %d bytes, more than %d", req.Path, len(req.Data), MaxChunk)
	}
	if k == regular {
		size, off, n := req.FileSize, req.Offset, int64(len(req.Data))
		switch {
		case size < 0 || size > c.lim.MaxFileSize || size > c.lim.MaxTotalBytes:
			return nil, 0, invalid("copy file: %s: file_size %d out of range 0-%d", req.Path, size, min(c.lim.MaxFileSize, c.lim.MaxTotalBytes))
		case off < 0 || off > size || n > size-off:
			return nil, 0, invalid("copy file: %s: chunk [%d, +%d) does not fit file_size %d", req.Path, off, n, size)
		}
	}
	if k == symlink {
		if err := c.checkTarget(req.Path, string(req.Data)); err != nil {
			return nil, 0, err
		}
	}
	return parts, k, nil
}

// checkTarget refuses symlinks that point outside the root: the runtime
// only creates links inside a volume (config maps' "..data" links), and a
// link out of the root would later be followed by whoever reads the volume.
// A ".." component is refused outright rather than resolved lexically: after
// "a -> ." a link "b -> a/.." looks like the root but the kernel resolves it
// to the root's parent.
func (c *Copier) checkTarget(at, target string) error {
	if target == "" || len(target) > safepath.MaxPath || strings.ContainsRune(target, 0) {
		return invalid("copy file: %s: symlink target is empty, too long or contains NUL", at)
	}
	for _, p := range strings.Split(target, "/") {
		if p == ".." {
			return errs.Newf(errdefs.ErrPermissionDenied, "copy file: %s: symlink target %q contains \"..\"", at, target)
		}
	}
	resolved := target
	if !path.IsAbs(target) {
		resolved = path.Join(path.Dir(at), target)
	}
	resolved = path.Clean(resolved)
	if resolved == c.root || strings.HasPrefix(resolved, c.root+"/") {
		return nil
	}
	return errs.Newf(errdefs.ErrPermissionDenied, "copy file: %s: symlink target %q leaves %s", at, target, c.root)
}

// Request is one CopyFile request: a chunk of a regular file, a directory
// or a symlink (its target in Data), by the type bits of FileMode. UID and
// GID of -1 leave ownership alone.
type Request struct {
	Path     string
	FileSize int64
	FileMode uint32
	DirMode  uint32
	UID, GID int32
	Offset   int64
	Data     []byte
}

// Copy applies one CopyFile request.
func (c *Copier) Copy(_ context.Context, req *Request) error {
	parts, k, err := c.check(req)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.MkdirAll(c.root, 0o755); err != nil {
		return fmt.Errorf("copy file: create %s: %w", c.root, err)
	}
	rootfd, err := unix.Open(c.root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("copy file: open %s: %w", c.root, err)
	}
	defer unix.Close(rootfd)
	dfd, err := c.openParents(rootfd, parts[:len(parts)-1], req.DirMode&dirPermMask)
	if err != nil {
		return fmt.Errorf("copy file %s: %w", req.Path, err)
	}
	defer unix.Close(dfd)
	if len(parts) > 1 {
		// Kata gives the immediate parent the file's owner: a volume's
		// directory must be readable by the pod's user.
		if err := unix.Fchown(dfd, int(req.UID), int(req.GID)); err != nil {
			return fmt.Errorf("copy file %s: chown parent: %w", req.Path, err)
		}
	}
	name := parts[len(parts)-1]
	switch k {
	case directory:
		err = c.makeDir(dfd, name, req)
	case symlink:
		err = c.makeSymlink(dfd, name, req)
	default:
		err = c.writeChunk(dfd, name, req)
	}
	if err != nil {
		return fmt.Errorf("copy file %s: %w", req.Path, err)
	}
	return nil
}

// classify turns the errors a hostile tree produces into request errors.
func classify(op, name string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP):
		return errs.Newf(errdefs.ErrPermissionDenied, "%s %q: is a symlink, refusing to follow it", op, name)
	case errors.Is(err, unix.ENOTDIR):
		return invalid("%s %q: not a directory", op, name)
	case errors.Is(err, unix.EISDIR):
		return invalid("%s %q: is a directory", op, name)
	}
	return fmt.Errorf("%s %q: %w", op, name, err)
}

// openDir opens a directory entry of dfd, refusing symlinks.
func openDir(dfd int, name string) (int, error) {
	fd, err := safepath.OpenBeneath(dfd, name, unix.O_DIRECTORY|unix.O_RDONLY)
	if err != nil {
		return -1, classify("open directory", name, errors.Unwrap(err))
	}
	return fd, nil
}

// openParents walks (and creates, with mode) the parent directories,
// never following a symlink. A missing one counts against the entry limit
// before it is created.
func (c *Copier) openParents(rootfd int, parents []string, mode uint32) (int, error) {
	reserve := func(rel string) error { return c.reserve(path.Base(rel), 1, 0) }
	fd, _, err := safepath.MkdirBeneath(rootfd, strings.Join(parents, "/"), mode, reserve)
	var pe *os.PathError
	if errors.As(err, &pe) {
		op := "open directory"
		if pe.Op == "mkdirat" {
			op = "create directory"
		}
		return -1, classify(op, path.Base(pe.Path), pe.Err)
	}
	if err != nil {
		return -1, err
	}
	return fd, nil
}

func (c *Copier) makeDir(dfd int, name string, req *Request) error {
	var st unix.Stat_t
	if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := c.reserve(name, 1, 0); err != nil {
			return err
		}
	}
	// An existing directory is kept (its contents may have been copied
	// already); anything else in the way goes.
	if err := unix.Unlinkat(dfd, name, 0); err == nil {
		c.use.stale()
	} else if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EISDIR) {
		return classify("remove", name, err)
	}
	if err := unix.Mkdirat(dfd, name, dirPermMask&req.FileMode); err != nil && !errors.Is(err, unix.EEXIST) {
		return classify("create directory", name, err)
	}
	fd, err := openDir(dfd, name)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, req.FileMode&filePermMask); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := unix.Fchown(fd, int(req.UID), int(req.GID)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	return nil
}

func (c *Copier) makeSymlink(dfd int, name string, req *Request) error {
	if err := c.reserve(name, 1, 0); err != nil {
		return err
	}
	// Whatever was there is counted again on the next rescan.
	c.use.stale()
	if err := removeAllAt(dfd, name, 0); err != nil {
		return err
	}
	if err := unix.Symlinkat(string(req.Data), dfd, name); err != nil {
		return classify("create symlink", name, err)
	}
	if err := unix.Fchownat(dfd, name, int(req.UID), int(req.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown symlink: %w", err)
	}
	return nil
}

// tempName is the hidden sibling a file is assembled in; hashed so that it
// fits NAME_MAX whatever the target's length.
func tempName(name string) string {
	h := sha256.Sum256([]byte(name))
	return ".cocoon-copy-" + hex.EncodeToString(h[:12]) + ".tmp"
}

func (c *Copier) writeChunk(dfd int, name string, req *Request) error {
	tmp := tempName(name)
	flags := unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if req.Offset == 0 {
		flags |= unix.O_CREAT | unix.O_TRUNC
		// The first chunk reserves the whole file, next to what it may
		// replace: both exist until the rename.
		files, bytes := 1, req.FileSize
		var tst unix.Stat_t
		if unix.Fstatat(dfd, tmp, &tst, unix.AT_SYMLINK_NOFOLLOW) == nil && tst.Mode&unix.S_IFMT == unix.S_IFREG {
			files, bytes = 0, bytes-tst.Size // an abandoned upload starts again
		}
		if err := c.reserve(name, files, bytes); err != nil {
			return err
		}
	}
	fd, err := unix.Openat(dfd, tmp, flags, 0o600)
	if errors.Is(err, unix.ENOENT) {
		return invalid("no upload in progress for offset %d (the first chunk must have offset 0)", req.Offset)
	}
	if err != nil {
		return classify("open", tmp, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return invalid("temporary file %q is not a regular file", tmp)
	}
	if st.Size() != req.Offset {
		return invalid("offset %d does not continue the upload (%d bytes received so far)", req.Offset, st.Size())
	}
	if _, err := f.WriteAt(req.Data, req.Offset); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if req.Offset+int64(len(req.Data)) != req.FileSize {
		return nil // more chunks to come
	}
	if err := unix.Fchmod(fd, req.FileMode&filePermMask); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := unix.Fchown(fd, int(req.UID), int(req.GID)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	// rename(2) replaces files and symlinks atomically but not directories.
	var ost unix.Stat_t
	old := unix.Fstatat(dfd, name, &ost, unix.AT_SYMLINK_NOFOLLOW) == nil
	if old && ost.Mode&unix.S_IFMT == unix.S_IFDIR {
		c.use.stale()
		if err := removeAllAt(dfd, name, 0); err != nil {
			return err
		}
	}
	if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
		return classify("rename into", name, err)
	}
	if old && ost.Mode&unix.S_IFMT != unix.S_IFDIR {
		c.use.release(1, regularSize(&ost))
	}
	return nil
}

// removeAllAt removes name under dfd and, for a directory, everything in
// it, without following symlinks.
func removeAllAt(dfd int, name string, depth int) error {
	if depth > maxDepth {
		return invalid("remove %q: tree deeper than %d", name, maxDepth)
	}
	err := unix.Unlinkat(dfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return classify("remove", name, err)
	}
	fd, err := openDir(dfd, name)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err != nil {
		d.Close()
		return fmt.Errorf("read directory %q: %w", name, err)
	}
	for _, n := range names {
		if err := removeAllAt(fd, n, depth+1); err != nil {
			d.Close()
			return err
		}
	}
	d.Close()
	if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return classify("remove directory", name, err)
	}
	return nil
}
