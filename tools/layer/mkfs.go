package layer

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// MinMkfsVersion is the oldest erofs-utils with every flag the node's
// differ passes: --tar=f and --aufs (1.7), --mkfs-time (1.8), --sort=none
// (1.8.2, which Kata's erofs snapshotter guide requires).
var MinMkfsVersion = [3]int{1, 8, 2}

// BundledMkfs is where ci/install-deps.sh puts a recent enough mkfs.erofs on
// Debian 12, whose own erofs-utils (1.5) has no tar mode.
const BundledMkfs = "/opt/cocoon/erofs-utils/mkfs.erofs"

// Mkfs is a mkfs.erofs binary and its version.
type Mkfs struct {
	Path    string
	Version string
}

// LookupMkfs returns the mkfs.erofs at path, or when path is empty the
// first of $PATH's mkfs.erofs and BundledMkfs that is recent enough. The
// error names every candidate and its version, since the version decides
// the bytes of the image and so the root hash.
func LookupMkfs(ctx context.Context, path string) (*Mkfs, error) {
	candidates := []string{path}
	if path == "" {
		candidates = []string{"mkfs.erofs", BundledMkfs}
	}
	var tried []string
	for _, c := range candidates {
		p, err := exec.LookPath(c)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: not found", c))
			continue
		}
		v, err := mkfsVersion(ctx, p)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		if !atLeast(v, MinMkfsVersion) {
			tried = append(tried, fmt.Sprintf("%s: erofs-utils %s", p, v))
			continue
		}
		return &Mkfs{Path: p, Version: v}, nil
	}
	return nil, fmt.Errorf("no mkfs.erofs of erofs-utils >= %d.%d.%d (tar mode, --mkfs-time, --sort=none, as containerd's EROFS differ runs it): %s",
		MinMkfsVersion[0], MinMkfsVersion[1], MinMkfsVersion[2], strings.Join(tried, "; "))
}

// mkfsVersion reads "mkfs.erofs (erofs-utils) 1.8.6" from --version. Old
// releases have no --version but print "mkfs.erofs 1.5" before the usage.
func mkfsVersion(ctx context.Context, path string) (string, error) {
	out, _ := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	first, _, _ := strings.Cut(string(out), "\n")
	f := strings.Fields(first)
	if len(f) < 2 || !strings.HasPrefix(f[0], "mkfs.erofs") {
		return "", fmt.Errorf("unrecognised version output %q", first)
	}
	return f[len(f)-1], nil
}

// atLeast compares "1.8.6" (or "1.8.6-dirty", "1.9") with min.
func atLeast(v string, min [3]int) bool {
	v, _, _ = strings.Cut(v, "-")
	parts := strings.Split(v, ".")
	for i := 0; i < 3; i++ {
		n := 0
		if i < len(parts) {
			var err error
			if n, err = strconv.Atoi(parts[i]); err != nil {
				return false
			}
		}
		if n != min[i] {
			return n > min[i]
		}
	}
	return true
}
