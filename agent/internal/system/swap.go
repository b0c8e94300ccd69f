package system

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Swap area layout (mkswap's "version 1" header, include/linux/swap.h):
// the first page holds 1024 boot bytes, then version, last_page,
// nr_badpages, a 16-byte UUID and a 16-byte label; the page's last ten
// bytes are the signature.
const (
	swapSignature = "SWAPSPACE2"
	swapMinPages  = 10
	maxPCIDepth   = 8
)

func (g *Guest) refuseSwap() error {
	if g.o.Confidential {
		return errdefs.ErrPermissionDenied.WithMessage("swap is refused in a confidential guest: swapped pages would be readable by the host")
	}
	return nil
}

// AddSwap enables swap on the hot-plugged virtio-blk disk at pciPath
// (slot numbers from the root bus down through bridges).
func (g *Guest) AddSwap(ctx context.Context, pciPath []uint32) error {
	if err := g.refuseSwap(); err != nil {
		return err
	}
	if len(pciPath) == 0 || len(pciPath) > maxPCIDepth {
		return invalid("PCI path has %d elements, want 1-%d", len(pciPath), maxPCIDepth)
	}
	for _, s := range pciPath {
		if s > 0x1f {
			return invalid("PCI slot %#x out of range 0-0x1f", s)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, g.o.HotplugTimeout)
	defer cancel()
	var (
		name string
		err  error
	)
	for {
		if name, err = g.blockByPCIPath(pciPath); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("swap disk at PCI path %s: %w: %w", FormatPCIPath(pciPath), err, errdefs.ErrNotFound)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return g.enable(filepath.Join(g.o.Dev, name), false)
}

// FormatPCIPath prints a PCI path the way Kata writes it: "02/03".
func FormatPCIPath(p []uint32) string {
	s := make([]string, len(p))
	for i, v := range p {
		s[i] = fmt.Sprintf("%02x", v)
	}
	return strings.Join(s, "/")
}

// blockByPCIPath finds the block device name below the PCI device at path.
func (g *Guest) blockByPCIPath(path []uint32) (string, error) {
	dir := filepath.Join(g.o.Sysfs, "devices", "pci0000:00", fmt.Sprintf("0000:00:%02x.0", path[0]))
	for _, slot := range path[1:] {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return "", err
		}
		suffix := fmt.Sprintf(":%02x.0", slot)
		next := ""
		for _, e := range ents {
			if n := e.Name(); strings.HasPrefix(n, "0000:") && len(n) == len("0000:00:00.0") && strings.HasSuffix(n, suffix) {
				next = filepath.Join(dir, n)
				break
			}
		}
		if next == "" {
			return "", fmt.Errorf("no device in slot %02x behind %s", slot, dir)
		}
		dir = next
	}
	// virtio-blk: <dev>/virtioN/block/vdX
	for _, pat := range []string{"block/*", "virtio*/block/*"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		if len(m) > 0 {
			return filepath.Base(m[0]), nil
		}
	}
	return "", fmt.Errorf("no block device under %s", dir)
}

// AddSwapPath enables swap on a file (or block device) the runtime placed
// in the guest.
func (g *Guest) AddSwapPath(_ context.Context, path string) error {
	if err := g.refuseSwap(); err != nil {
		return err
	}
	if err := safepath.Within(path, "/"); err != nil {
		return err
	}
	return g.enable(path, true)
}

// enable checks the target, writes a swap header when it has none and
// mayFormat, and calls swapon.
func (g *Guest) enable(path string, mayFormat bool) error {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("swap %s: %w", path, errdefs.ErrNotFound)
	}
	if errors.Is(err, unix.ELOOP) {
		return errs.Newf(errdefs.ErrInvalidArgument, "swap %s is a symlink", path)
	}
	if err != nil {
		return fmt.Errorf("swap %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	switch {
	case st.Mode().IsRegular():
	case st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0:
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("swap %s: size: %w", path, err)
		}
	default:
		return invalid("swap %s is neither a regular file nor a block device", path)
	}
	page := int64(os.Getpagesize())
	if size < swapMinPages*page {
		return invalid("swap %s is %d bytes, less than %d pages", path, size, swapMinPages)
	}
	has, err := HasSwapSignature(f, page)
	if err != nil {
		return fmt.Errorf("swap %s: %w", path, err)
	}
	if !has {
		if !mayFormat {
			return invalid("swap disk %s has no swap signature (the runtime formats it)", path)
		}
		if err := WriteSwapHeader(f, size, page); err != nil {
			return fmt.Errorf("swap %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := g.o.Syscalls.Swapon(path); err != nil {
		return fmt.Errorf("swapon %s: %w", path, err)
	}
	return nil
}

// HasSwapSignature reports whether the first page ends in SWAPSPACE2.
func HasSwapSignature(r io.ReaderAt, page int64) (bool, error) {
	sig := make([]byte, len(swapSignature))
	if _, err := r.ReadAt(sig, page-int64(len(sig))); err != nil {
		return false, fmt.Errorf("read swap signature: %w", err)
	}
	return bytes.Equal(sig, []byte(swapSignature)), nil
}

// WriteSwapHeader writes a version-1 swap header for an area of size bytes
// with pages of page bytes, as mkswap does.
func WriteSwapHeader(w io.WriterAt, size, page int64) error {
	if page < 4096 || page&(page-1) != 0 {
		return invalid("page size %d is not a power of two >= 4096", page)
	}
	pages := size / page
	if pages < swapMinPages {
		return invalid("swap area of %d bytes is less than %d pages", size, swapMinPages)
	}
	if pages-1 > 0xffffffff {
		return invalid("swap area of %d pages is too large", pages)
	}
	hdr := make([]byte, page)
	binary.NativeEndian.PutUint32(hdr[1024:], 1)               // version
	binary.NativeEndian.PutUint32(hdr[1028:], uint32(pages-1)) // last_page
	binary.NativeEndian.PutUint32(hdr[1032:], 0)               // nr_badpages
	if _, err := rand.Read(hdr[1036:1052]); err != nil {       // uuid
		return err
	}
	hdr[1036+6] = hdr[1036+6]&0x0f | 0x40 // RFC 4122 version 4
	hdr[1036+8] = hdr[1036+8]&0x3f | 0x80
	copy(hdr[page-int64(len(swapSignature)):], swapSignature)
	if _, err := w.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("write swap header: %w", err)
	}
	return nil
}
