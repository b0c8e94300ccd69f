package sandbox

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Where the Kata runtime puts things in the guest, relative to the run dir
// (virtcontainers/kata_agent.go, fs_share_linux.go):
//
//	shared/containers/<cid>/rootfs            a container's rootfs (shared fs or block)
//	shared/containers/<cid>-<16 hex>-<name>   a file or directory shared for <cid>
//	shared/containers/sandbox-<16 hex>-<name> one shared for the whole pod
//	shared/containers/<sid>/rootfs/local/<v>  a local volume, under the sandbox container
//	<cid>/rootfs, <cid>/...                   a guest-pulled rootfs and its overlay dirs
//	sandbox/...                               pod storages (shm, ephemeral, block volumes)
//
// Every path a container's spec names is mapped onto this layout to find
// whose it is. A container may use its own paths and the pod's; another
// container's paths (its rootfs, which with guest pull is the decrypted
// image, and the files it writes, such as its termination log) and the
// agent's own directories are refused.
const (
	sharedDir    = "shared"
	containerDir = "containers"
	podDir       = "sandbox"
	podShared    = "sandbox"
	localDir     = "local"
	randHexLen   = 16
)

// pathUse is what confining one host path found.
type pathUse struct {
	resolved string
	// owners are the other containers whose area the path lies in (ids
	// that need not exist yet).
	owners []string
}

// confine checks a host path for container cid and returns it with its
// symlinks resolved. own are the mount points of the storages the request
// carries. Both the path as sent and as resolved must lie in the run dir,
// outside the agent's private directories, and in cid's or the pod's area;
// other containers' areas are returned as owners for claim to check.
// Host input names a forbidden place well-formedly, so refusals are
// PERMISSION_DENIED, as for paths outside the run dir; malformed paths stay
// INVALID_ARGUMENT.
//
// This check is of a path, and libcontainer (runc 1.5) mounts the root and
// bind sources by path in its init process, later. A component the host
// can change after the check (a virtio-fs share under shared/) would
// redirect those mounts, so the paths are not handed on as checked:
// stageMounts (stage.go) opens each beneath the run dir without following
// symlinks and gives libcontainer a private bind of that descriptor.
func (s *Sandbox) confine(what, p, cid string, own []string) (pathUse, error) {
	if err := safepath.Within(p, slices.Compact([]string{s.o.KataRunDir, s.runDir})...); err != nil {
		return pathUse{}, fmt.Errorf("%s: %w", what, err)
	}
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		return pathUse{}, errs.Newf(errdefs.ErrInvalidArgument, "%s %q: %v", what, p, err)
	}
	if err := safepath.Within(resolved, s.runDir); err != nil {
		return pathUse{}, fmt.Errorf("%s %q resolves outside: %w", what, p, err)
	}
	use := pathUse{resolved: resolved}
	for _, q := range []string{s.inRunDir(p), resolved} {
		for _, priv := range s.private {
			if overlaps(q, priv) {
				return pathUse{}, errs.Newf(errdefs.ErrPermissionDenied, "%s %q reaches the agent's private directory %s", what, p, priv)
			}
		}
		rel, _ := filepath.Rel(s.runDir, q)
		if q == resolved && s.isLocalVolume(rel, own) {
			continue
		}
		owners, ok := ownersOf(rel)
		if !ok {
			return pathUse{}, errs.Newf(errdefs.ErrPermissionDenied, "%s %q covers the areas of every container", what, p)
		}
		for _, o := range owners {
			if o != cid && !slices.Contains(use.owners, o) {
				use.owners = append(use.owners, o)
			}
		}
	}
	return use, nil
}

// inRunDir rewrites a path given under the unresolved KataRunDir onto the
// resolved run dir, so that both spellings map onto the same layout.
func (s *Sandbox) inRunDir(p string) string {
	if rel, err := filepath.Rel(s.o.KataRunDir, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return filepath.Join(s.runDir, rel)
	}
	return p
}

// isLocalVolume reports whether rel is a Kata local volume: under the
// sandbox container's rootfs/local, and below a storage of this request
// (the runtime sends the volume as a "local" storage with every container
// that uses it).
func (s *Sandbox) isLocalVolume(rel string, own []string) bool {
	s.mu.Lock()
	sid := s.id
	s.mu.Unlock()
	if sid == "" {
		return false
	}
	base := filepath.Join(sharedDir, containerDir, sid, "rootfs", localDir)
	if !strings.HasPrefix(rel, base+"/") {
		return false
	}
	for _, mp := range own {
		if r, err := filepath.Rel(s.o.KataRunDir, mp); err == nil && (rel == r || strings.HasPrefix(rel, r+"/")) && strings.HasPrefix(r, base+"/") {
			return true
		}
		if r, err := filepath.Rel(s.runDir, mp); err == nil && (rel == r || strings.HasPrefix(rel, r+"/")) && strings.HasPrefix(r, base+"/") {
			return true
		}
	}
	return false
}

// ownersOf maps a path relative to the run dir onto the containers whose
// area it lies in; none means the pod's. ok is false for the run dir and
// the shared directories themselves, which hold every container's area.
func ownersOf(rel string) (owners []string, ok bool) {
	parts := strings.Split(rel, "/")
	switch {
	case rel == "." || rel == "":
		return nil, false
	case parts[0] == podDir:
		return nil, true
	case parts[0] != sharedDir:
		return []string{parts[0]}, true
	case len(parts) == 1:
		return nil, false
	case parts[1] != containerDir:
		// Other shared directories (nydus's rafs, ...) hold what the host
		// shares, never what the guest made.
		return nil, true
	case len(parts) == 2:
		return nil, false
	}
	name := parts[2]
	if rest, ok := strings.CutPrefix(name, podShared+"-"); ok && isRandPrefixed(rest) {
		return nil, true
	}
	// A name is a container's own directory, or <cid>-<16 hex>-<name>. The
	// split is ambiguous when ids contain "-<16 hex>-", so every reading
	// counts.
	owners = []string{name}
	for i := strings.IndexByte(name, '-'); i > 0; i = next(name, i) {
		if isRandPrefixed(name[i+1:]) {
			owners = append(owners, name[:i])
		}
	}
	return owners, true
}

func next(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '-')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// isRandPrefixed reports whether s is "<16 lower-case hex>-<something>".
func isRandPrefixed(s string) bool {
	if len(s) < randHexLen+2 || s[randHexLen] != '-' {
		return false
	}
	for _, c := range s[:randHexLen] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// overlaps reports whether one of two clean absolute paths contains the other.
func overlaps(a, b string) bool {
	return within(a, b) || within(b, a)
}

func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// rootShape checks that a root path (relative to the run dir) is where the
// Kata runtime puts a rootfs: shared/containers/<x>/rootfs or <x>/rootfs.
func rootShape(rel string) bool {
	parts := strings.Split(rel, "/")
	switch {
	case len(parts) == 4 && parts[0] == sharedDir && parts[1] == containerDir:
		return parts[3] == "rootfs" && safepath.ValidateID("container", parts[2]) == nil
	case len(parts) == 2 && parts[0] != sharedDir && parts[0] != podDir:
		return parts[1] == "rootfs" && safepath.ValidateID("container", parts[0]) == nil
	}
	return false
}

// claim records the other containers' areas cid's paths lie in, refusing
// those of containers that exist or are being created. reserve refuses a
// later container whose area is claimed, before its storages are mounted:
// a bind made now would otherwise receive its rootfs through propagation.
func (s *Sandbox) claim(cid string, owners []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range owners {
		if _, ok := s.containers[o]; ok || s.pending[o] {
			return errs.Newf(errdefs.ErrPermissionDenied, "container %s: a path lies in the area of container %s", cid, o)
		}
	}
	if len(owners) > 0 {
		s.held[cid] = owners
	}
	return nil
}

// claimedBy returns a container holding a path in id's area, or "".
// Callers hold s.mu.
func (s *Sandbox) claimedBy(id string) string {
	for o, owners := range s.held {
		if o != id && slices.Contains(owners, id) {
			return o
		}
	}
	return ""
}
