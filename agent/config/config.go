// Package config turns the agent's inputs — defaults, the image's own file,
// a TOML file, the kernel command line, environment variables and flags —
// into one immutable Config.
//
// Precedence, lowest first: built-in defaults, the image file at the fixed
// path ImageFile (on the dm-verity root), the TOML file named by --config or
// agent.config_file, the kernel command line (agent.* keys, as the Kata agent
// reads them), the KATA_AGENT_* environment variables, and finally explicit
// flags.
//
// In confidential mode (asked for by the image file or by any host source)
// the kernel command line, environment and flags are the host's and are not
// trusted: a key-by-key table (trustRules, docs/security.md) decides which of
// them the host may still set. Settings that could weaken the agent come only
// from the image file or from initdata, and a host-named file is not read.
package config

import (
	"fmt"
	"log/slog"
	"time"
)

// DefaultServerAddr is where the Kata runtime expects the agent: any CID, port 1024.
const DefaultServerAddr = "vsock://-1:1024"

// DefaultKataRunDir is where the Kata runtime expects the containers'
// bundles and shared mounts, and DefaultHotplugTimeout how long a
// hot-plugged device is waited for. The domain packages that take them fall
// back to these too, so every default has this one owner.
const (
	DefaultKataRunDir     = "/run/kata-containers"
	DefaultHotplugTimeout = 3 * time.Second
)

// Config is the agent's complete configuration. It is built once at start-up
// and never changed afterwards.
type Config struct {
	ServerAddr           string        `toml:"server_addr"`
	LogLevel             slog.Level    `toml:"-"`
	LogLevelName         string        `toml:"log_level"`
	DebugConsole         bool          `toml:"debug_console"`
	DevMode              bool          `toml:"dev_mode"`
	HotplugTimeout       time.Duration `toml:"-"`
	ImagePullTimeout     time.Duration `toml:"-"`
	LaunchProcessTimeout time.Duration `toml:"-"`
	CDHAPITimeout        time.Duration `toml:"-"`
	DebugConsoleVport    uint32        `toml:"debug_console_vport"`
	LogVport             uint32        `toml:"log_vport"`
	ContainerPipeSize    int32         `toml:"container_pipe_size"`
	HTTPSProxy           string        `toml:"https_proxy"`
	HTTPProxy            string        `toml:"http_proxy"`
	NoProxy              string        `toml:"no_proxy"`

	// Image-pull keys guest-components reads from the kernel command line
	// when cdh.toml has no [image] table (image-rs src/config.rs
	// KernelParameterConfigs, CDH hub/src/config/mod.rs). They apply only
	// then, as there.

	// ImagePolicyFile is a containers policy.json URI (file://, kbs:///
	// or an absolute path); used only with EnableSignatureVerification.
	ImagePolicyFile string `toml:"image_policy_file"`
	// EnableSignatureVerification makes ImagePolicyFile apply.
	EnableSignatureVerification bool `toml:"enable_signature_verification"`
	// ImageRegistryAuth is an auth.json URI.
	ImageRegistryAuth string `toml:"image_registry_auth"`
	// KBSResources is CDH's "uri::path,uri::path" list of KBS resources
	// fetched at start-up (cdh.kbs_resources); see ParseKBSResources.
	KBSResources string `toml:"kbs_resources"`
	// GuestComponentsRestAPI is one of all, attestation, resource.
	GuestComponentsRestAPI string `toml:"guest_components_rest_api"`
	// GuestComponentsProcs is one of attestation-agent, confidential-data-hub,
	// api-server-rest, none.
	GuestComponentsProcs string `toml:"guest_components_procs"`
	UnifiedCgroup        bool   `toml:"unified_cgroup_hierarchy"`
	PolicyFile           string `toml:"policy_file"`
	// ConfigFile is the TOML file the configuration was read from, if any.
	ConfigFile string `toml:"-"`

	// cocoon's own settings.

	// KataRunDir is the root under which the runtime may place container
	// bundles, rootfs and mounts (Kata: /run/kata-containers). Host paths
	// outside it are refused.
	KataRunDir string `toml:"kata_run_dir"`
	// StateDir holds the agent's own state: container state, sockets, logs.
	StateDir string `toml:"state_dir"`
	// CgroupParent is the cgroup, relative to each hierarchy's root, that
	// containers are created under.
	CgroupParent string `toml:"cgroup_parent"`

	// DecisionLog is where every policy decision is appended.
	DecisionLog string `toml:"decision_log"`
	// InitdataDevice is the block device (or file) holding the initdata image.
	InitdataDevice string `toml:"initdata_device"`
	// Confidential makes the agent refuse to fall back to permissive defaults.
	Confidential bool `toml:"confidential"`
	// AAKBCParams is the older "cc_kbc::<KBS URL>" form of the KBS address,
	// used when initdata names no KBS.
	AAKBCParams string `toml:"aa_kbc_params"`
	// AttestSample enables the unsigned sample attester when no TEE is
	// found (development only; refused in confidential mode).
	AttestSample bool `toml:"attest_sample"`

	// GuestInit is true when the agent is the guest's init (PID 1): it then
	// sets up the system, always looks for initdata, binds the pod's DNS
	// over the guest's resolv.conf and powers the VM off after
	// DestroySandbox. It is not a key: no source sets it. cocoon-agent
	// decides it once at start (initsys.IsInit); tests may set it.
	GuestInit bool `toml:"-" trust:"not-a-key"`
}

// Default returns the configuration used when nothing overrides it. The
// values match the Kata agent's defaults.
func Default() Config {
	return Config{
		ServerAddr:             DefaultServerAddr,
		LogLevel:               slog.LevelInfo,
		LogLevelName:           "info",
		HotplugTimeout:         DefaultHotplugTimeout,
		ImagePullTimeout:       1200 * time.Second,
		LaunchProcessTimeout:   6 * time.Second,
		CDHAPITimeout:          50 * time.Second,
		DebugConsoleVport:      1026,
		LogVport:               0,
		GuestComponentsRestAPI: "resource",
		GuestComponentsProcs:   "api-server-rest",
		DecisionLog:            "/run/cocoon/decisions.log",
		KataRunDir:             DefaultKataRunDir,
		StateDir:               "/run/cocoon",
		CgroupParent:           "/cocoon",
	}
}

// ParseLogLevel maps the logrus-style level names Kata accepts onto slog levels.
// slog has no level above error, so fatal, panic and critical log as errors.
func ParseLogLevel(s string) (slog.Level, error) {
	switch s {
	case "trace", "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "critical", "fatal", "panic":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid log level %q (want trace, debug, info, warn, error, critical, fatal or panic)", s)
}
