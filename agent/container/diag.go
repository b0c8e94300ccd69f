package container

import (
	"fmt"
	"io"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TerminationPathAnnotation names the container path Kubernetes reads the
// termination message from.
const TerminationPathAnnotation = "io.kubernetes.container.terminationMessagePath"

// maxTerminationLog is Kubernetes' own cap on a termination message.
const maxTerminationLog = 4096

// TerminationLog returns the container's termination message: the content
// of the file bind-mounted at the annotated termination message path, at
// most 4 KiB, invalid UTF-8 replaced. A container without the annotation or
// the mount, or whose file does not exist yet, has an empty message.
func TerminationLog(s *specs.Spec) (string, error) {
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
	// The source was confined to the run directory when the container was
	// created; O_NOFOLLOW keeps a symlink swapped in later from leading out.
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if err == unix.ENOENT {
			return "", nil
		}
		return "", fmt.Errorf("termination log %s: %w", src, err)
	}
	f := os.NewFile(uintptr(fd), src)
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("termination log %s is not a regular file", src)
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
