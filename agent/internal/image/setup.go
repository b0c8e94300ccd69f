package image

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/cocoon-tee/cocoon/agent/internal/image/imgconfig"
	"github.com/cocoon-tee/cocoon/agent/internal/image/layerstore"
)

// AgentDeps is what the agent hands the image side at start-up.
type AgentDeps struct {
	// CDHConfig is the cdh.toml document (from initdata), possibly empty.
	CDHConfig []byte
	// KBS resolves kbs:/// URIs; nil leaves them unresolvable.
	KBS imgconfig.Resolver
	// Keys resolves key-provider key ids; nil when there is no KBS.
	Keys KeyResolver
	// OnPull records pulls in the runtime measurement log.
	OnPull func(ctx context.Context, ev PullEvent)
	// From the agent configuration.
	KataRunDir, StateDir           string
	HTTPSProxy, HTTPProxy, NoProxy string
	// Kernel holds the image keys of the agent configuration (kernel
	// command line or image file), used when cdh.toml has no [image].
	Kernel       imgconfig.KernelParams
	Timeout      time.Duration
	Confidential bool
	// PauseBundle overrides DefaultPauseBundle.
	PauseBundle string
	Log         *slog.Logger
}

// StoreDir is where layers live unless cdh.toml sets work_dir.
func StoreDir(stateDir string) string { return filepath.Join(stateDir, "image") }

// NewAgentDriver parses the [image] configuration, opens the layer store
// and returns the image_guest_pull driver. Remote documents (policy,
// credentials) are fetched on the first pull, not here.
func NewAgentDriver(d AgentDeps) (*Driver, error) {
	conf, err := imgconfig.ParseWithKernel(d.CDHConfig, d.Kernel)
	if err != nil {
		return nil, fmt.Errorf("cdh.toml: %w", err)
	}
	root := conf.WorkDir
	if root == "" {
		root = StoreDir(d.StateDir)
	}
	store, err := layerstore.Open(root)
	if err != nil {
		return nil, err
	}
	resolvers := imgconfig.Schemes{"file": imgconfig.FileResolver{}}
	if d.KBS != nil {
		resolvers["kbs"] = d.KBS
	}
	if conf.FromKernel && d.Log != nil {
		d.Log.Info("image pull configured from the agent's kernel-command-line keys: cdh.toml has no [image] table",
			"policy", conf.ImageSecurityPolicyURI, "credentials", conf.AuthenticatedRegistryCredentialsURI)
	}
	build := func(ctx context.Context) (*Puller, error) {
		return New(ctx, Options{
			Config:        conf,
			Resolver:      resolvers,
			Store:         store,
			KeyResolver:   d.Keys,
			OnPull:        d.OnPull,
			HTTPSProxy:    d.HTTPSProxy,
			HTTPProxy:     d.HTTPProxy,
			NoProxy:       d.NoProxy,
			Timeout:       d.Timeout,
			RequirePolicy: d.Confidential,
			Log:           d.Log,
		})
	}
	drv := NewLazyDriver(root, build, d.KataRunDir, d.PauseBundle)
	drv.store = store
	return drv, nil
}
