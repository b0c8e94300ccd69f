package sandbox

import (
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// guestSystemDirs are the hostPath sources the Kata runtime leaves in a
// container's spec instead of sharing them: /proc and /sys and everything
// below (virtcontainers/mount.go:33 systemMountPrefixes, skipped by
// container.go:460 mountSharedDirMounts), and /dev with what is below it
// (mount.go:60 isHostDevice; the runtime shares a regular file under /dev,
// so what is left names a device, a directory or nothing on the host). The
// agent binds the guest's path of the same name, as Kata's agent does by
// mounting the spec's source unchanged.
var guestSystemDirs = []string{"/dev", "/proc", "/sys"}

// guestSystemPath reports whether a bind source is one the runtime left for
// the guest's own /dev, /proc or /sys, and returns it cleaned. Like the
// runtime, it judges the cleaned path ("/../sys" is /sys).
func guestSystemPath(src string) (string, bool) {
	if !filepath.IsAbs(src) {
		return "", false
	}
	c := filepath.Clean(src)
	for _, d := range guestSystemDirs {
		if c == d || strings.HasPrefix(c, d+"/") {
			return c, true
		}
	}
	return "", false
}

// confineSystem checks a guest /dev, /proc or /sys bind source and returns
// it with its symlinks resolved. The resolved path must stay below the same
// kind of directory — /proc/<pid>/root and /proc/<pid>/cwd lead to the
// agent's own file system — and outside the agent's private directories.
// Whether the container may have it at all is the policy's decision.
func (s *Sandbox) confineSystem(src string) (string, error) {
	c, _ := guestSystemPath(src)
	resolved, err := filepath.EvalSymlinks(c)
	if err != nil && (c == "/proc" || strings.HasPrefix(c, "/proc/")) {
		// /proc's magic links (root, cwd, fd/N) may name no path at all
		// ("/ (deleted)", "pipe:[N]"): what they lead to cannot be checked.
		return "", errs.Newf(errdefs.ErrPermissionDenied, "mount source %q does not resolve to a path in the guest's /proc: %v", src, err)
	}
	if err != nil {
		return "", errs.Newf(errdefs.ErrInvalidArgument, "mount source %q: the guest has no such path: %v", src, err)
	}
	if r, ok := guestSystemPath(resolved); !ok || r != resolved {
		return "", errs.Newf(errdefs.ErrPermissionDenied, "mount source %q resolves to %s, outside the guest's /dev, /proc and /sys", src, resolved)
	}
	for _, priv := range s.private {
		if overlaps(resolved, priv) {
			return "", errs.Newf(errdefs.ErrPermissionDenied, "mount source %q reaches the agent's private directory %s", src, priv)
		}
	}
	return resolved, nil
}
