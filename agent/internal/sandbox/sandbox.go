// Package sandbox owns the pod: its identity, hostname and DNS (the guest's
// resolver), the IPC and UTS namespaces its containers share, the PID
// namespace of its first container, its storages, and the registry of its
// containers. It prepares a container's spec from what the host sent
// (rootfs and mount sources confined to the container's own and the pod's
// areas of the Kata run directory or to the guest's /dev, /proc and /sys,
// sealed secrets in shared files replaced by private plaintext, namespaces
// rewritten to the sandbox's) and hands it to package container; it also
// collects OOM events for GetOOMEvent.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/internal/observe"
	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/agent/internal/system"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// oomBacklog is how many OOM events are kept while nobody calls GetOOMEvent.
const oomBacklog = 64

// Options configure a Sandbox.
type Options struct {
	// KataRunDir confines host-supplied rootfs paths and bind-mount sources.
	KataRunDir string
	// StateDir holds the sandbox's own files (namespaces, resolv.conf,
	// libcontainer state) and, by default, the agent's: no container path
	// may reach it, even when it lies in KataRunDir.
	StateDir string
	// Private are further directories no container path may reach: the
	// layer store when cdh.toml's work_dir moves it, the decision log's.
	Private []string
	// CgroupParent is the cgroup containers are created under ("/cocoon").
	CgroupParent string
	// PipeSize is agent.container_pipe_size.
	PipeSize int
	Storage  *storage.Manager
	Log      *slog.Logger
	// UnsealEnv, when set, rewrites a container's final environment (after
	// the image's defaults are merged) before the container is created:
	// sealed secrets become their plaintext only inside the guest. Its error
	// refuses the container and keeps its class (FAILED_PRECONDITION,
	// PERMISSION_DENIED, ...).
	UnsealEnv func(ctx context.Context, env []string) ([]string, error)
	// UnsealFile, when set, unseals the content of a file the runtime shares
	// for a container (a Secret volume's file) that starts with "sealed.".
	// The plaintext is written below StateDir and bound in place of the
	// shared file, which the host may see. Its error refuses the container.
	UnsealFile func(ctx context.Context, sealed string) (string, error)
	// GuestResolvConf is the guest's resolver file that CreateSandbox's dns
	// lines are bound over (/etc/resolv.conf when the agent is the guest's
	// init). Empty leaves the resolver of the machine the agent runs on
	// alone: the lines are then only written to StateDir.
	GuestResolvConf string
	// TrustedStore, when set, mounts the pod's trusted_store block device
	// (its guest node) as the place image layers are unpacked to, and
	// returns its release. Nil refuses pods that declare one.
	TrustedStore func(ctx context.Context, dev string) (release func(context.Context) error, err error)
	// SysDir and DevDir are where device nodes are looked up by their
	// numbers ("/sys" and "/dev" when empty).
	SysDir, DevDir string
	// Observe is the owner's cocoon.toml (sealed logs, exec grants); nil
	// is observe.Default (observe.go).
	Observe *observe.Config
}

// Sandbox is the pod. All methods are safe for concurrent use.
type Sandbox struct {
	o           Options
	runDir      string // KataRunDir with symlinks resolved
	noPivotRoot bool

	mu         sync.Mutex
	created    bool
	resolvOn   bool // GuestResolvConf carries the pod's resolv.conf
	id         string
	hostname   string
	ipcNS      string
	utsNS      string
	pidNS      string // /proc/<pid>/ns/pid of the first container's init
	containers map[string]*container.Container
	pending    map[string]bool     // ids being created
	held       map[string][]string // container id → other containers' areas its paths use
	staged     map[string]*staging // container id → its staged root and bind sources (stage.go)
	private    []string            // StateDir and Options.Private, resolved
	oom        chan string
	destroyed  chan struct{} // closed by Destroy; wakes GetOOMEvent

	// trustMu serialises mounting the trusted store, which takes long,
	// without holding mu.
	trustMu sync.Mutex
	trusted *trustedStore

	grants grants // exec grants admitted by the policy gate (observe.go)

	hooks hooks // seams for tests; zero in the agent
}

// hooks lets tests act at the moments a hostile host would: between
// checking a request's paths and mounting them. Nil functions are skipped.
type hooks struct {
	// checked runs once every path of a CreateContainer is checked.
	checked func()
	// beforeCreate runs just before libcontainer is asked to create the
	// container (and so to bind its mount sources).
	beforeCreate func()
}

func run(f func()) {
	if f != nil {
		f()
	}
}

// New returns an empty sandbox; CreateSandbox configures it.
func New(o Options) (*Sandbox, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Storage == nil {
		o.Storage = storage.NewManager()
	}
	if o.CgroupParent == "" {
		o.CgroupParent = "/cocoon"
	}
	if err := os.MkdirAll(o.KataRunDir, 0o755); err != nil {
		return nil, fmt.Errorf("kata run dir: %w", err)
	}
	runDir, err := filepath.EvalSymlinks(o.KataRunDir)
	if err != nil {
		return nil, fmt.Errorf("kata run dir: %w", err)
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if sd, err := filepath.EvalSymlinks(o.StateDir); err == nil {
		o.StateDir = sd
	}
	private := []string{filepath.Clean(o.StateDir)}
	for _, p := range o.Private {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("private directory %q is not absolute", p)
		}
		// One that does not exist yet may be made later: keep both spellings.
		private = append(private, filepath.Clean(p))
		if r, err := filepath.EvalSymlinks(p); err == nil {
			private = append(private, r)
		}
	}
	return &Sandbox{
		o: o, runDir: runDir, noPivotRoot: rootIsRamfs(), private: private,
		containers: map[string]*container.Container{}, pending: map[string]bool{}, held: map[string][]string{},
		staged: map[string]*staging{},
		oom:    make(chan string, oomBacklog), destroyed: make(chan struct{}),
	}, nil
}

// Config is what CreateSandbox carries.
type Config struct {
	ID       string
	Hostname string
	DNS      []string
	Storages []*storage.Storage
	Modules  []*Module
}

// Create configures the sandbox once: kernel modules, shared namespaces,
// sandbox storages and resolv.conf. A second call is AlreadyExists. On error
// everything this call did is undone.
func (s *Sandbox) Create(ctx context.Context, c Config) (err error) {
	if c.ID != "" {
		if err := safepath.ValidateID("sandbox", c.ID); err != nil {
			return err
		}
	}
	if len(c.Hostname) > 64 || strings.ContainsAny(c.Hostname, "\x00/\n") {
		return errs.Newf(errdefs.ErrInvalidArgument, "hostname %q is not a valid host name", c.Hostname)
	}
	resolv, err := resolvConf(c.DNS)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.created {
		return errdefs.ErrAlreadyExists.WithMessage("sandbox already created")
	}
	for _, m := range c.Modules {
		if err := loadModule(ctx, m); err != nil {
			return err
		}
	}
	dir := s.sandboxDir()
	ipc, uts, err := persistentNS(filepath.Join(dir, "ns"), c.Hostname)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, releaseNS(ipc, uts))
		}
	}()
	if _, err := s.o.Storage.Add(ctx, "", c.Storages); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.o.Storage.Release(ctx, ""))
		}
	}()
	if err := os.WriteFile(s.ResolvConf(), resolv, 0o644); err != nil {
		return fmt.Errorf("write resolv.conf: %w", err)
	}
	if s.o.GuestResolvConf != "" && len(resolv) > 0 {
		if err := bindResolvConf(s.ResolvConf(), s.o.GuestResolvConf); err != nil {
			return err
		}
		s.resolvOn = true
	}
	s.created, s.id, s.hostname, s.ipcNS, s.utsNS = true, c.ID, c.Hostname, ipc, uts
	return nil
}

func (s *Sandbox) sandboxDir() string { return filepath.Join(s.o.StateDir, "sandbox") }

// ResolvConf is where CreateSandbox wrote the pod's DNS configuration.
func (s *Sandbox) ResolvConf() string { return filepath.Join(s.sandboxDir(), "resolv.conf") }

// Container returns a created container. An unknown id is
// INVALID_ARGUMENT, as the Kata runtime expects.
func (s *Sandbox) Container(id string) (*container.Container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "invalid container id %q", id)
	}
	return c, nil
}

// Containers lists the container ids.
func (s *Sandbox) Containers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.containers))
	for id := range s.containers {
		out = append(out, id)
	}
	return out
}

// ContainerCgroups maps each container id to its cgroup path relative to the
// cgroup mount, for the per-container metrics.
func (s *Sandbox) ContainerCgroups() map[string]string {
	ids := s.Containers()
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		out[id] = path.Join("/", s.o.CgroupParent, id)
	}
	return out
}

// Remove destroys a container and releases its storages. ctx bounds the wait
// for its processes to die.
func (s *Sandbox) Remove(ctx context.Context, id string) error {
	c, err := s.Container(id)
	if err != nil {
		return err
	}
	if err := c.Destroy(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	staged := s.staged[id]
	delete(s.containers, id)
	delete(s.held, id)
	delete(s.staged, id)
	if len(s.containers) == 0 {
		s.pidNS = ""
	}
	s.mu.Unlock()
	s.pruneRan() // the container's granted execs are gone with it
	// The staging binds go before the storages they may show.
	return errors.Join(staged.release(), os.RemoveAll(s.secretsOf(id)), s.o.Storage.Release(ctx, id))
}

// Active reports whether there is anything to tear down: a sandbox made by
// CreateSandbox, or containers.
func (s *Sandbox) Active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created || len(s.containers) > 0
}

// Destroy removes every container, the sandbox storages and namespaces,
// and wakes GetOOMEvent callers. The sandbox can be created again.
func (s *Sandbox) Destroy(ctx context.Context) error {
	var errs []error
	for _, id := range s.Containers() {
		if err := s.Remove(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	// Its layers were released with the containers' images.
	if err := s.releaseTrustedStore(ctx); err != nil {
		errs = append(errs, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.o.Storage.Release(ctx, ""); err != nil {
		errs = append(errs, err)
	}
	if err := releaseNS(s.ipcNS, s.utsNS); err != nil {
		errs = append(errs, err)
	}
	if s.resolvOn {
		if err := unbindResolvConf(s.o.GuestResolvConf); err != nil {
			errs = append(errs, err)
		} else {
			s.resolvOn = false
		}
	}
	if err := os.RemoveAll(s.sandboxDir()); err != nil {
		errs = append(errs, err)
	}
	s.created, s.id, s.hostname, s.ipcNS, s.utsNS, s.pidNS = false, "", "", "", "", ""
	close(s.destroyed)
	s.destroyed = make(chan struct{})
	return errors.Join(errs...)
}

// WaitOOM blocks until a container's memory cgroup hits OOM and returns the
// container's id; it fails when the sandbox is destroyed or ctx ends.
func (s *Sandbox) WaitOOM(ctx context.Context) (string, error) {
	s.mu.Lock()
	destroyed := s.destroyed
	s.mu.Unlock()
	select {
	case id := <-s.oom:
		return id, nil
	case <-destroyed:
		return "", errdefs.ErrUnavailable.WithMessage("sandbox destroyed")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (s *Sandbox) onOOM(id string) {
	select {
	case s.oom <- id:
	default:
		s.o.Log.Warn("OOM event dropped: nobody is reading them", "container_id", id)
	}
}

// rootIsRamfs reports whether / is an initramfs, where pivot_root fails and
// libcontainer must use MS_MOVE + chroot instead.
func rootIsRamfs() bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	mounts, err := system.ParseMountinfo(f)
	if err != nil {
		return false
	}
	// The last mount on / is the one in effect.
	ramfs := false
	for _, m := range mounts {
		if m.MountPoint == "/" {
			ramfs = m.FSType == "rootfs" || m.FSType == "ramfs"
		}
	}
	return ramfs
}

// TerminationLog answers GetDiagnosticData("termination_log") for a
// container: see container.TerminationLog for what may be read.
func (s *Sandbox) TerminationLog(id string) (string, error) {
	c, err := s.Container(id)
	if err != nil {
		return "", err
	}
	// The file is looked up where the runtime made it, not through the
	// container's staging bind: the spec is given the checked sources back.
	spec := *c.Spec()
	spec.Mounts = slices.Clone(spec.Mounts)
	s.mu.Lock()
	staged := s.staged[id]
	s.mu.Unlock()
	for i := range spec.Mounts {
		spec.Mounts[i].Source = staged.originOf(spec.Mounts[i].Source)
	}
	return container.TerminationLog(&spec, s.runDir, id)
}
