package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// TerminationPathAnnotation names the container path Kubernetes reads the
// termination message from.
const TerminationPathAnnotation = "io.kubernetes.container.terminationMessagePath"

// maxTerminationLog is Kubernetes' own cap on a termination message.
const maxTerminationLog = 4096

// sharedContainers is where, under the run dir, the Kata runtime shares (or,
// without a shared file system, copies) the termination log file it binds at
// the annotated path, named <cid>-<16 hex>-<base name>.
const sharedContainers = "shared/containers"

// TerminationLog returns container cid's termination message: the content
// of the file bind-mounted at the annotated termination message path, at
// most 4 KiB, invalid UTF-8 replaced. A container without the annotation or
// the mount, or whose file does not exist yet, has an empty message.
//
// The answer goes to the host, so the file must be the one the Kata runtime
// made for this container: a regular file directly in runDir's
// shared/containers named after cid, reached without following any symlink
// (openat2 beneath runDir). Anything else is refused, whatever the mount
// says: the container's own bind sources may have been swapped since it was
// created.
func TerminationLog(s *specs.Spec, runDir, cid string) (string, error) {
	dest := s.Annotations[TerminationPathAnnotation]
	if dest == "" {
		return "", nil
	}
	src := ""
	for _, m := range s.Mounts {
		if m.Destination == dest && isBindMount(m) {
			src = m.Source
		}
	}
	if src == "" {
		return "", nil
	}
	rel, err := filepath.Rel(runDir, src)
	if err != nil || filepath.Dir(rel) != sharedContainers || !strings.HasPrefix(filepath.Base(rel), cid+"-") {
		return "", errs.Newf(errdefs.ErrPermissionDenied, "termination log %s is not a file %s/%s-* of the run dir", src, sharedContainers, cid)
	}
	dir, err := unix.Open(runDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("termination log: run dir: %w", err)
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case errors.Is(err, unix.ENOENT):
		return "", nil
	case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV):
		return "", errs.Newf(errdefs.ErrPermissionDenied, "termination log %s: a symlink on the way", src)
	case err != nil:
		return "", fmt.Errorf("termination log %s: %w", src, err)
	}
	f := os.NewFile(uintptr(fd), src)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("termination log %s: %w", src, err)
	}
	// A second name could be a hard link the container made to a file it
	// may read but the host may not; the runtime's file has one.
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		return "", errs.Newf(errdefs.ErrPermissionDenied, "termination log %s is not a regular file with one name", src)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTerminationLog))
	if err != nil {
		return "", fmt.Errorf("termination log %s: %w", src, err)
	}
	return strings.ToValidUTF8(string(data), "\uFFFD"), nil
}

func isBindMount(m specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}
