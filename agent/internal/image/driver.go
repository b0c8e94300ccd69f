package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/image/layerstore"
	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// DriverName is the Storage.driver value the Kata runtime sends for guest pull.
const DriverName = "image_guest_pull"

// DefaultPauseBundle is where the guest image carries the pause container.
const DefaultPauseBundle = "/pause_bundle"

// Limits on the host-supplied driver options.
const (
	maxDriverOptions  = 64
	maxDriverOptBytes = 256 << 10
	maxMetadataKeys   = 1024
)

var containerTypeKeys = []string{"io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"}

// Driver mounts image_guest_pull storages: it pulls Storage.source and
// mounts an overlay of the image's layers (read-only, shared through the
// store) with a private upper directory at Storage.mount_point.
type Driver struct {
	// root holds the per-mount upper and work directories.
	root string
	// puller is built on first use: the documents it needs may live in the
	// KBS, which is not worth contacting before an image is wanted.
	mu     sync.Mutex
	build  func(ctx context.Context) (*Puller, error)
	puller *Puller
	// kataRunDir bounds mount points.
	kataRunDir string
	// pauseBundle holds rootfs/ and config.json of the sandbox container.
	pauseBundle string
	// store is the puller's layer store, when the driver knows it ahead of
	// the puller (AddLayerRoot).
	store *layerstore.Store
}

// NewDriver returns the storage driver over an existing puller.
// pauseBundle "" means DefaultPauseBundle.
func NewDriver(p *Puller, kataRunDir, pauseBundle string) *Driver {
	d := NewLazyDriver(p.o.Store.Root(), func(context.Context) (*Puller, error) { return p, nil }, kataRunDir, pauseBundle)
	d.puller = p
	d.store = p.o.Store
	return d
}

// NewLazyDriver returns a driver that builds its puller on the first image
// pull, and again on the next one if building failed. root is the layer
// store's directory.
func NewLazyDriver(root string, build func(ctx context.Context) (*Puller, error), kataRunDir, pauseBundle string) *Driver {
	if pauseBundle == "" {
		pauseBundle = DefaultPauseBundle
	}
	return &Driver{root: root, build: build, kataRunDir: kataRunDir, pauseBundle: pauseBundle}
}

// StoreDir is where the driver keeps layers and per-mount upper
// directories: decrypted content no container mount may reach directly.
func (d *Driver) StoreDir() string { return d.root }

func (d *Driver) getPuller(ctx context.Context) (*Puller, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.puller != nil {
		return d.puller, nil
	}
	p, err := d.build(ctx)
	if err != nil {
		return nil, fmt.Errorf("image pull configuration: %w", err)
	}
	d.puller = p
	return p, nil
}

// ParseDriverOptions finds the image_guest_pull={"metadata":{...}} option
// and returns the metadata (container annotations).
func ParseDriverOptions(opts []string) (map[string]string, error) {
	if len(opts) > maxDriverOptions {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "%d driver options, limit %d", len(opts), maxDriverOptions)
	}
	for _, o := range opts {
		if len(o) > maxDriverOptBytes {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "driver option of %d bytes, limit %d", len(o), maxDriverOptBytes)
		}
		k, v, ok := strings.Cut(o, "=")
		if !ok || k != DriverName {
			continue
		}
		var vol struct {
			Metadata map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(v), &vol); err != nil {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "%s driver option: %v", DriverName, err)
		}
		if len(vol.Metadata) > maxMetadataKeys {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "%s metadata has %d keys, limit %d", DriverName, len(vol.Metadata), maxMetadataKeys)
		}
		if vol.Metadata == nil {
			vol.Metadata = map[string]string{}
		}
		return vol.Metadata, nil
	}
	return nil, errs.Newf(errdefs.ErrInvalidArgument, "missing %s=<json> driver option", DriverName)
}

func isSandbox(meta map[string]string) bool {
	for _, k := range containerTypeKeys {
		if meta[k] == "sandbox" {
			return true
		}
	}
	return false
}

// Mount implements storage.Driver.
func (d *Driver) Mount(ctx context.Context, r storage.Request) (storage.Mounted, error) {
	s := r.Storage
	meta, err := ParseDriverOptions(s.GetDriverOptions())
	if err != nil {
		return storage.Mounted{}, err
	}
	mp := s.GetMountPoint()
	if err := safepath.Within(mp, d.kataRunDir); err != nil {
		return storage.Mounted{}, fmt.Errorf("mount point: %w", err)
	}
	if mp == d.kataRunDir {
		return storage.Mounted{}, errdefs.ErrInvalidArgument.WithMessage("mount point is the run directory itself")
	}
	rel, _ := filepath.Rel(d.kataRunDir, mp)
	target, err := safepath.Join(d.kataRunDir, rel)
	if err != nil {
		return storage.Mounted{}, err
	}
	if s.GetSource() == "pause" || isSandbox(meta) {
		return d.mountPause(ctx, mp, target)
	}
	if s.GetSource() == "" {
		return storage.Mounted{}, errdefs.ErrInvalidArgument.WithMessage("image_guest_pull storage without a source image")
	}
	im, err := d.pull(ctx, s.GetSource())
	if err != nil {
		// image-rs's words, which CoCo's tests and users look for.
		return storage.Mounted{}, fmt.Errorf("%s %s: %w", textPullFailed, s.GetSource(), err)
	}
	lowers := make([]string, 0, len(im.Layers))
	for i := len(im.Layers) - 1; i >= 0; i-- {
		lowers = append(lowers, im.Layers[i])
	}
	cleanup, err := d.overlay(mp, target, lowers)
	if err != nil {
		return storage.Mounted{}, errors.Join(err, im.Release())
	}
	cfg := im.Config.Config
	return storage.Mounted{
		Path:  mp,
		Image: &cfg,
		Cleanup: func(ctx context.Context) error {
			return errors.Join(cleanup(), im.Release())
		},
	}, nil
}

func (d *Driver) pull(ctx context.Context, ref string) (*Image, error) {
	p, err := d.getPuller(ctx)
	if err != nil {
		return nil, err
	}
	return p.Pull(ctx, ref)
}

func (d *Driver) mountPause(ctx context.Context, mp, target string) (storage.Mounted, error) {
	rootfs := filepath.Join(d.pauseBundle, "rootfs")
	if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		return storage.Mounted{}, fmt.Errorf("pause bundle %s has no rootfs: %w", d.pauseBundle, errdefs.ErrNotFound)
	}
	raw, err := os.ReadFile(filepath.Join(d.pauseBundle, "config.json"))
	if err != nil {
		return storage.Mounted{}, fmt.Errorf("pause bundle config: %w", err)
	}
	cfg, err := pauseConfig(raw)
	if err != nil {
		return storage.Mounted{}, err
	}
	cleanup, err := d.overlay(mp, target, []string{rootfs})
	if err != nil {
		return storage.Mounted{}, err
	}
	return storage.Mounted{Path: mp, Image: cfg, Cleanup: func(context.Context) error { return cleanup() }}, nil
}

// pauseConfig turns the bundle's runtime spec into the image config the
// container side consumes.
func pauseConfig(raw []byte) (*ocispec.ImageConfig, error) {
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("pause bundle config.json: %w", errdefs.ErrInvalidArgument.WithMessage(err.Error()))
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, errdefs.ErrInvalidArgument.WithMessage("pause bundle config.json has no process args")
	}
	return &ocispec.ImageConfig{
		Cmd:        spec.Process.Args,
		Env:        spec.Process.Env,
		WorkingDir: spec.Process.Cwd,
		User:       fmt.Sprintf("%d:%d", spec.Process.User.UID, spec.Process.User.GID),
	}, nil
}

// overlay mounts lowers (top first) with a private upper directory at
// target and returns the undo.
func (d *Driver) overlay(mp, target string, lowers []string) (func() error, error) {
	sum := sha256.Sum256([]byte(mp))
	priv := filepath.Join(d.root, "containers", hex.EncodeToString(sum[:12]))
	upper, work := filepath.Join(priv, "upper"), filepath.Join(priv, "work")
	for _, l := range lowers {
		if strings.ContainsAny(l, ":,") {
			return nil, fmt.Errorf("layer path %q cannot be passed to overlayfs", l)
		}
	}
	if err := os.RemoveAll(priv); err != nil {
		return nil, err
	}
	for _, dir := range []string{upper, work, target} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("prepare %s: %w", dir, err)
		}
	}
	data := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(data) >= 4096 {
		return nil, errs.Newf(errdefs.ErrNotImplemented, "image has %d layers: overlay options exceed one page", len(lowers))
	}
	if err := unix.Mount("overlay", target, "overlay", unix.MS_NODEV, data); err != nil {
		return nil, errors.Join(fmt.Errorf("mount overlay at %s: %w", mp, err), os.RemoveAll(priv))
	}
	return func() error {
		if err := unix.Unmount(target, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
		return os.RemoveAll(priv)
	}, nil
}
