package initsys

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The agent's state lives on tmpfs mounts of its own. /run is shared with
// what the host can fill at will (CopyFile targets, emptyDirs, image
// layers); if the decision log shared it, a host that fills /run would stop
// decisions from being recorded. So StateDir (the configuration's default
// state_dir, holding the decision log, the runtime measurement log and
// container state) gets a tmpfs bounded to StateSize, and the image store
// under it, which grows with images and container writes, gets another, so
// neither /run nor the images can take the state's space. tmpfs allocates
// pages only as they are written, so the bound costs no memory up front.
// A state_dir configured elsewhere is not covered.
const (
	StateDir      = "/run/cocoon"
	StateImageDir = "/run/cocoon/image"
	StateSize     = 64 << 20
)

// mountState mounts the state tmpfs mounts under root ("/" in the guest);
// mounts already in place are kept.
func mountState(root string) error {
	mounts := []mountSpec{
		{"tmpfs", filepath.Join(root, StateDir), "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, fmt.Sprintf("mode=0700,size=%d", StateSize)},
		{"tmpfs", filepath.Join(root, StateImageDir), "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0700"},
	}
	for _, m := range mounts {
		if err := mountOnce(m); err != nil {
			return fmt.Errorf("state: %w", err)
		}
	}
	return nil
}
