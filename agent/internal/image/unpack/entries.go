package unpack

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
)

// clear removes whatever sits at base so a later entry can replace it, as
// tar semantics demand. A non-empty directory is only replaced by another
// directory.
func (u *unpacker) clear(pfd int, base string) error {
	err := unix.Unlinkat(pfd, base, 0)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		// Something was (or may have been) removed: it could be a
		// directory the cache holds open.
		u.forget()
	}
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
		if err := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err != nil {
			return fmt.Errorf("replace directory %s: %w", base, err)
		}
		return nil
	}
	return fmt.Errorf("replace %s: %w", base, err)
}

func (u *unpacker) whiteout(parent, base string) error {
	pfd, err := u.openDir(parent, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if base == opaqueMarker {
		if err := unix.Fsetxattr(pfd, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %s opaque: %w", parent, err)
		}
		return nil
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." {
		return fmt.Errorf("whiteout of %q: %w", target, ErrUnsafe)
	}
	if err := u.clear(pfd, target); err != nil {
		return err
	}
	// overlayfs whiteout: a 0:0 character device.
	if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout %s: %w", target, err)
	}
	return nil
}

func (u *unpacker) dir(pfd int, parent, base string, hdr *tar.Header) error {
	err := unix.Mkdirat(pfd, base, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := u.clear(pfd, base); err != nil {
				return err
			}
			err = unix.Mkdirat(pfd, base, 0o700)
		} else {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := safepath.OpenBeneath(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer unix.Close(fd)
	if err := u.meta(fd, hdr); err != nil {
		return err
	}
	u.dirs = append(u.dirs, dirTimes{parent: parent, base: base, ts: times(hdr)})
	return nil
}

func (u *unpacker) file(pfd int, base string, hdr *tar.Header, tr *tar.Reader) error {
	if err := u.clear(pfd, base); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), base)
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, tr, u.buf)
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("wrote %d of %d bytes", n, hdr.Size)
	}
	if err == nil {
		err = u.meta(fd, hdr)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	ts := times(hdr)
	return unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

func (u *unpacker) hardlink(pfd int, base string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if target == "" {
		return fmt.Errorf("hard link to the layer root: %w", ErrUnsafe)
	}
	tparent, tbase := split(target)
	tfd, err := u.openDir(tparent, false)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	defer unix.Close(tfd)
	var tst unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &tst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("hard link target %q is not in this layer: %w", hdr.Linkname, errInvalid(err))
	}
	if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hard link to directory %q: %w", hdr.Linkname, ErrUnsafe)
	}
	var st unix.Stat_t
	if unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Ino == tst.Ino && st.Dev == tst.Dev {
		return nil
	}
	if err := u.clear(pfd, base); err != nil {
		return err
	}
	// Flags 0: link the target entry itself, never what a symlink names.
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("hard link: %w", err)
	}
	return nil
}

func errInvalid(err error) error {
	return fmt.Errorf("%v: %w", err, ErrUnsafe)
}

func (u *unpacker) node(pfd int, base string, hdr *tar.Header, kind uint32, dev int) error {
	if err := u.clear(pfd, base); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, base, kind|uint32(hdr.Mode&0o777), dev); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	if err := u.owner(pfd, base, hdr, false); err != nil {
		return err
	}
	if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	ts := times(hdr)
	return unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

func (u *unpacker) owner(pfd int, base string, hdr *tar.Header, symlink bool) error {
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	if symlink {
		ts := times(hdr)
		return unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

// meta applies owner, mode (chown first: it clears set-id bits) and xattrs
// to an open file or directory.
func (u *unpacker) meta(fd int, hdr *tar.Header) error {
	if hdr.Uid < 0 || hdr.Gid < 0 {
		return fmt.Errorf("negative owner %d:%d: %w", hdr.Uid, hdr.Gid, ErrUnsafe)
	}
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPAXPrefix)
		if !ok {
			continue
		}
		// overlayfs reads trusted.overlay.* from lower layers: a layer that
		// carried its own could redirect lookups or forge opaque dirs.
		if strings.HasPrefix(name, "trusted.overlay.") || name == "" {
			return fmt.Errorf("xattr %q: %w", name, ErrUnsafe)
		}
		if err := unix.Fsetxattr(fd, name, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

func times(hdr *tar.Header) [2]unix.Timespec {
	omit := unix.Timespec{Nsec: unix.UTIME_OMIT}
	ts := [2]unix.Timespec{omit, omit}
	// Times outside what UnixNano can hold are left alone rather than wrapped.
	valid := func(t time.Time) bool { return t.Year() >= 1678 && t.Year() <= 2261 }
	if valid(hdr.ModTime) {
		ts[1] = unix.NsecToTimespec(hdr.ModTime.UnixNano())
		ts[0] = ts[1]
	}
	if valid(hdr.AccessTime) {
		ts[0] = unix.NsecToTimespec(hdr.AccessTime.UnixNano())
	}
	return ts
}
