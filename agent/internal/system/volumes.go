package system

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// VolumeUsage is one kind of a volume's usage, in bytes or inodes.
type VolumeUsage struct {
	Total, Available, Used uint64
}

// VolumeStats are a volume's space and inode usage.
type VolumeStats struct {
	Bytes, Inodes VolumeUsage
}

// VolumeStats reports a volume's space and inode usage, as the kubelet's
// CSI NodeGetVolumeStats expects them.
func (g *Guest) VolumeStats(_ context.Context, path string) (*VolumeStats, error) {
	if err := safepath.Within(path, "/"); err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("volume %s: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return &VolumeStats{
		Bytes:  VolumeUsage{Total: st.Blocks * bs, Available: st.Bavail * bs, Used: (st.Blocks - st.Bfree) * bs},
		Inodes: VolumeUsage{Total: st.Files, Available: st.Ffree, Used: st.Files - st.Ffree},
	}, nil
}

// mounts reads the agent's mount table.
func (g *Guest) mounts() ([]Mount, error) {
	f, err := os.Open(filepath.Join(g.o.Proc, "self/mountinfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMountinfo(f)
}

func (g *Guest) mountAt(path string) (Mount, error) {
	ms, err := g.mounts()
	if err != nil {
		return Mount{}, err
	}
	// The last entry wins: later mounts hide earlier ones.
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].MountPoint == path {
			return ms[i], nil
		}
	}
	return Mount{}, fmt.Errorf("%s is not a mount point: %w", path, errdefs.ErrNotFound)
}

// ResizeVolume grows the file system mounted at path to fill its block
// device, after the host grew the device. ext4 grows online with
// resize2fs, xfs with xfs_growfs; other file systems cannot. Kata answers
// Unimplemented here; the tools must be in the guest image. The requested
// size is not needed: the file system grows to what the device now holds.
func (g *Guest) ResizeVolume(ctx context.Context, path string, _ uint64) error {
	if err := safepath.Within(path, "/"); err != nil {
		return err
	}
	m, err := g.mountAt(path)
	if err != nil {
		return err
	}
	var cmd *exec.Cmd
	switch m.FSType {
	case "ext4", "ext3", "ext2":
		cmd = exec.CommandContext(ctx, "resize2fs", m.Source)
	case "xfs":
		cmd = exec.CommandContext(ctx, "xfs_growfs", path)
	default:
		return errs.Newf(errdefs.ErrNotImplemented, "resizing %s (%s) is not supported, only ext2/3/4 and xfs", path, m.FSType)
	}
	cmd.Env = []string{"PATH=/usr/sbin:/sbin:/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", cmd.Args[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// RemoveStaleVirtiofsShares looks at every virtio-fs mount under the
// shared directory. Kata stats them so that virtiofsd drops its cache of
// deleted host directories; a share whose stat fails is stale, and it is
// detached here so it stops pinning host file descriptors.
func (g *Guest) RemoveStaleVirtiofsShares(context.Context) error {
	ms, err := g.mounts()
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	prefix := strings.TrimSuffix(g.o.SharedDir, "/") + "/"
	var errs []error
	for _, m := range ms {
		if m.FSType != "virtiofs" || !strings.HasPrefix(m.MountPoint, prefix) {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(m.MountPoint, &st); err == nil {
			continue
		}
		if err := g.o.Syscalls.Unmount(m.MountPoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("detach stale share %s: %w", m.MountPoint, err))
		}
	}
	return errors.Join(errs...)
}

// MemAgentDisabled is Kata's answer when its memory agent is not running,
// which is its default: INTERNAL, not UNIMPLEMENTED, so a runtime that tells
// the two apart sees what it sees from Kata. cocoon has no memory agent:
// memcg aging and compaction tuning are host-side optimisations for
// over-committed non-confidential VMs.
func MemAgentDisabled() error {
	return errdefs.ErrInternal.WithMessage("mem-agent is disabled")
}
