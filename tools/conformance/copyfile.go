package conformance

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// With shared_fs = "none" (the CoCo default) the runtime copies every file
// a container mounts from the host — /etc/hosts, /etc/hostname,
// /etc/resolv.conf, ConfigMap and Secret volumes, disk emptyDirs — into the
// guest with CopyFile, and points the mount at the copy.

// goDirMode is the Go runtime's CopyFile dir_mode: Go's os.FileMode(0750) |
// os.ModeDir, whose directory bit is 1<<31, not S_IFDIR
// (virtcontainers/sandbox.go:71 DirMode, kata_agent.go copyFile ~l.2761).
const goDirMode = uint32(1<<31 | 0o750)

// rsDirMode is runtime-rs's: S_IFDIR | 0750, and only on directories
// (runtime-rs/crates/resource/src/volume/share_fs_volume.rs:50 DIR_MODE_PERMS).
const rsDirMode = uint32(unix.S_IFDIR | 0o750)

// sharedFileName is where the runtime copies a mount's source:
// <shared>/<cid>-<16 hex>-<basename of the destination>
// (virtcontainers/fs_share_linux.go shareFileName ~l.310; runtime-rs
// share_fs_volume.rs generate_copy_file_guest_path ~l.970).
func (h *Harness) sharedFileName(cid, dest string) string {
	return filepath.Join(h.cfg.KataRunDir, "shared", "containers", fmt.Sprintf("%s-%s%s-%s", cid, randomID(), randomID()[:4], filepath.Base(dest)))
}

// copyToGuest walks src on this machine and sends one CopyFile per entry,
// in walk order, shaped as cfg.Runtime's runtime shapes it, to guest.
func (h *Harness) copyToGuest(ctx context.Context, src, guest string) error {
	return filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		req, err := h.copyFileRequest(p, filepath.Join(guest, rel))
		if err != nil {
			return err
		}
		if _, err := h.Agent.CopyFile(ctx, req); err != nil {
			return fmt.Errorf("CopyFile %s (mode %#o): %w", req.Path, req.FileMode, err)
		}
		return nil
	})
}

// copyFileRequest builds the request for one file as the runtime does.
// Go (kata_agent.go copyFile ~l.2753-2792): file_mode is lstat's st_mode,
// dir_mode goDirMode on every request, a symlink's target in data with
// file_size 0. runtime-rs (share_fs_volume.rs ~l.595-660, ~l.810-840):
// file_mode is st_mode for files and directories but bare S_IFLNK for a
// symlink, whose file_size is the target's length; dir_mode is set only on
// directories. Files fit one request here (the runtimes split at 2 MiB).
func (h *Harness) copyFileRequest(src, guest string) (*agentpb.CopyFileRequest, error) {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return nil, fmt.Errorf("lstat %s: %w", src, err)
	}
	req := &agentpb.CopyFileRequest{Path: guest, FileMode: st.Mode, Uid: int32(st.Uid), Gid: int32(st.Gid)}
	rs := h.cfg.Runtime == RuntimeRs
	if !rs {
		req.DirMode = goDirMode
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		req.Data, req.FileSize = b, int64(len(b))
	case unix.S_IFDIR:
		if rs {
			req.DirMode = rsDirMode
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return nil, err
		}
		req.Data = []byte(target)
		if rs {
			req.FileMode, req.FileSize = unix.S_IFLNK, int64(len(target))
		}
	default:
		return nil, fmt.Errorf("%s: the runtime does not copy file type %#o", src, st.Mode&unix.S_IFMT)
	}
	return req, nil
}
