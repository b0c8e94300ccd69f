// Package storage mounts the volumes the Kata runtime describes in its
// Storage messages (converted to Storage by agent/rpc). Drivers are a table keyed by Storage.driver; mounts are
// reference counted by mount point, so a volume shared by several containers
// is mounted once and unmounted after its last user goes.
package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Request is one storage to mount on behalf of a container (or the sandbox,
// whose owner id is "").
type Request struct {
	Storage *Storage
	// Owner is the container id the storage is mounted for.
	Owner string
}

// Mounted is what a driver produced.
type Mounted struct {
	// Path is where the storage is now available (normally Storage.mount_point).
	Path string
	// Image is set by image drivers: the pulled image's config, so that the
	// container can take its entrypoint, env, working dir and user.
	Image *ocispec.ImageConfig
	// Cleanup undoes the mount; called once, when the last reference goes.
	Cleanup func(ctx context.Context) error
}

// Driver mounts one kind of storage.
type Driver interface {
	Mount(ctx context.Context, r Request) (Mounted, error)
}

// DriverFunc adapts a function to Driver.
type DriverFunc func(ctx context.Context, r Request) (Mounted, error)

// Mount calls f.
func (f DriverFunc) Mount(ctx context.Context, r Request) (Mounted, error) { return f(ctx, r) }

// Manager owns the driver table and the refcounted mounts.
type Manager struct {
	mu      sync.Mutex
	drivers map[string]Driver
	mounts  map[string]*entry   // by mount point
	owners  map[string][]string // owner → mount points, in mount order
	// builtin backs MountTrustedStore; nil for a bare NewManager.
	builtin *builtin
}

type entry struct {
	m    Mounted
	refs int
}

// NewManager returns a manager with an empty driver table.
func NewManager() *Manager {
	return &Manager{drivers: map[string]Driver{}, mounts: map[string]*entry{}, owners: map[string][]string{}}
}

// Register adds a driver under name. Registering a name twice is an error.
func (m *Manager) Register(name string, d Driver) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.drivers[name]; ok {
		return fmt.Errorf("storage driver %q registered twice", name)
	}
	m.drivers[name] = d
	return nil
}

// Add mounts every storage for owner, in order. On error the storages this
// call mounted are released again and nothing is left behind.
func (m *Manager) Add(ctx context.Context, owner string, storages []*Storage) ([]Mounted, error) {
	storages, err := groupLayers(storages)
	if err != nil {
		return nil, err
	}
	out := make([]Mounted, 0, len(storages))
	var added []string
	for _, s := range storages {
		mt, err := m.add(ctx, owner, s)
		if err != nil {
			return nil, errors.Join(err, m.release(ctx, owner, added))
		}
		added = append(added, s.GetMountPoint())
		out = append(out, mt)
	}
	return out, nil
}

func (m *Manager) add(ctx context.Context, owner string, s *Storage) (Mounted, error) {
	if s == nil {
		return Mounted{}, errdefs.ErrInvalidArgument.WithMessage("storage is null")
	}
	// Mounting is serialised: drivers touch shared mount points and devices,
	// and two containers sharing a volume must not both mount it.
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.drivers[s.Driver]
	if !ok {
		return Mounted{}, errs.Newf(errdefs.ErrInvalidArgument, "unknown storage driver %q", s.Driver)
	}
	if e, ok := m.mounts[s.MountPoint]; ok && s.MountPoint != "" {
		e.refs++
		m.owners[owner] = append(m.owners[owner], s.MountPoint)
		return e.m, nil
	}
	mt, err := d.Mount(ctx, Request{Storage: s, Owner: owner})
	if err != nil {
		return Mounted{}, fmt.Errorf("storage %s (driver %s): %w", s.MountPoint, s.Driver, err)
	}
	m.mounts[s.MountPoint] = &entry{m: mt, refs: 1}
	m.owners[owner] = append(m.owners[owner], s.MountPoint)
	return mt, nil
}

// Release drops every reference owner holds, newest first, and unmounts
// storages nobody uses any more.
func (m *Manager) Release(ctx context.Context, owner string) error {
	m.mu.Lock()
	points := m.owners[owner]
	m.mu.Unlock()
	return m.release(ctx, owner, points)
}

func (m *Manager) release(ctx context.Context, owner string, points []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for i := len(points) - 1; i >= 0; i-- {
		p := points[i]
		m.owners[owner] = removeOne(m.owners[owner], p)
		e, ok := m.mounts[p]
		if !ok {
			continue
		}
		if e.refs--; e.refs > 0 {
			continue
		}
		delete(m.mounts, p)
		if e.m.Cleanup != nil {
			if err := e.m.Cleanup(ctx); err != nil {
				errs = append(errs, fmt.Errorf("release %s: %w", p, err))
			}
		}
	}
	if len(m.owners[owner]) == 0 {
		delete(m.owners, owner)
	}
	return errors.Join(errs...)
}

// removeOne removes the last occurrence of p.
func removeOne(s []string, p string) []string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == p {
			return append(s[:i], s[i+1:]...)
		}
	}
	return s
}

// MountPoints lists the mount points currently held, for diagnostics and tests.
func (m *Manager) MountPoints() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.mounts))
	for p := range m.mounts {
		out = append(out, p)
	}
	return out
}
