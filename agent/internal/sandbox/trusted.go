package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// trustedStore is the pod's mounted trusted_store.
type trustedStore struct {
	major, minor int64
	release      func(context.Context) error
}

// mountTrustedStore mounts the pod's trusted_store when the container's
// spec lists it, before the container's storages (its image pull) are
// mounted, as Kata's agent does (src/agent/src/rpc.rs:313-316 calls
// cdh_handler_trusted_storage before add_storages). The device is the
// spec's entry at /dev/trusted_store, whose numbers the request's devices
// have already mapped to the guest's (rpc.rs:2623-2645 uses them the same
// way). The store is mounted once per sandbox; later containers naming the
// same device share it, and DestroySandbox releases it.
func (s *Sandbox) mountTrustedStore(ctx context.Context, spec *specs.Spec) error {
	var dev *specs.LinuxDevice
	if spec.Linux != nil {
		for i := range spec.Linux.Devices {
			if spec.Linux.Devices[i].Path == storage.TrustedStoreDevice {
				dev = &spec.Linux.Devices[i]
				break
			}
		}
	}
	if dev == nil {
		return nil
	}
	if dev.Type != "b" {
		return errs.Newf(errdefs.ErrInvalidArgument, "%s has type %q: a trusted store is a block device", dev.Path, dev.Type)
	}
	s.trustMu.Lock()
	defer s.trustMu.Unlock()
	if t := s.trusted; t != nil {
		if t.major == dev.Major && t.minor == dev.Minor {
			return nil
		}
		return errs.Newf(errdefs.ErrFailedPrecondition, "the pod's trusted store is already device %d:%d, not %d:%d", t.major, t.minor, dev.Major, dev.Minor)
	}
	if s.o.TrustedStore == nil {
		return errdefs.ErrNotImplemented.WithMessage("the pod declares a trusted store, which this agent cannot mount (no image pull in the guest)")
	}
	node, err := s.blockNode(dev.Major, dev.Minor)
	if err != nil {
		return err
	}
	release, err := s.o.TrustedStore(ctx, node)
	if err != nil {
		return fmt.Errorf("trusted store on %s: %w", node, err)
	}
	s.trusted = &trustedStore{major: dev.Major, minor: dev.Minor, release: release}
	s.o.Log.InfoContext(ctx, "trusted store in use for images", "device", node)
	return nil
}

// releaseTrustedStore undoes mountTrustedStore once no container is left;
// on failure the store stays recorded so a later DestroySandbox retries.
func (s *Sandbox) releaseTrustedStore(ctx context.Context) error {
	s.trustMu.Lock()
	defer s.trustMu.Unlock()
	if s.trusted == nil {
		return nil
	}
	if err := s.trusted.release(ctx); err != nil {
		return fmt.Errorf("release trusted store: %w", err)
	}
	s.trusted = nil
	return nil
}

// blockNode finds the guest's node of block device major:minor through
// sysfs (/sys/dev/block/M:m links to the device's directory, named as its
// node in /dev) and checks that the node really has those numbers.
func (s *Sandbox) blockNode(major, minor int64) (string, error) {
	if major < 0 || minor < 0 || major > 0xfff || minor > 0xfffff {
		return "", errs.Newf(errdefs.ErrInvalidArgument, "device numbers %d:%d out of range", major, minor)
	}
	sysDir, devDir := s.o.SysDir, s.o.DevDir
	if sysDir == "" {
		sysDir = "/sys"
	}
	if devDir == "" {
		devDir = "/dev"
	}
	link, err := os.Readlink(filepath.Join(sysDir, "dev", "block", fmt.Sprintf("%d:%d", major, minor)))
	if err != nil {
		return "", errs.Newf(errdefs.ErrNotFound, "no block device %d:%d in the guest: %v", major, minor, err)
	}
	node := filepath.Join(devDir, filepath.Base(link))
	var st unix.Stat_t
	if err := unix.Stat(node, &st); err != nil {
		return "", errs.Newf(errdefs.ErrNotFound, "block device %d:%d: %v", major, minor, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(uint32(major), uint32(minor)) {
		return "", errs.Newf(errdefs.ErrFailedPrecondition, "%s is not block device %d:%d", node, major, minor)
	}
	return node, nil
}
