// Package observe reads the pod owner's observability settings: initdata's
// cocoon.toml, which names the owner's public keys (the key container
// output is sealed to, the keys that sign exec grants) and, per
// Kubernetes container, whether its logs are sealed, plain or denied,
// whether exec takes owner-signed grants, the policy's own rule or
// nothing, and which metrics GetMetrics returns. Initdata is bound to the
// TEE by its digest, so the host cannot change any of this.
package observe

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"fmt"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

// InitdataKey is cocoon.toml's name in initdata's [data] table.
const InitdataKey = "cocoon.toml"

// MaxConfig bounds cocoon.toml before it is parsed.
const MaxConfig = 1 << 20

// maxExecKeys bounds the number of exec-grant keys: each is tried per grant.
const maxExecKeys = 16

// Logs is what the host may read of a container's stdout and stderr.
type Logs string

// Log modes.
const (
	// LogsSeal encrypts the output to the owner's seal key.
	LogsSeal Logs = "seal"
	// LogsPlain leaves it to the policy's ReadStream rule, as without
	// cocoon.toml.
	LogsPlain Logs = "plain"
	// LogsDeny answers every read with end of stream (the agent keeps
	// draining).
	LogsDeny Logs = "deny"
)

// Exec is how ExecProcess in a container is decided.
type Exec string

// Exec modes.
const (
	// ExecGrant runs only owner-signed grants (cocoon-exec TOKEN).
	ExecGrant Exec = "grant"
	// ExecPolicy leaves exec to the policy's own ExecProcess rule.
	ExecPolicy Exec = "policy"
	// ExecDeny refuses every exec.
	ExecDeny Exec = "deny"
)

// Metrics is what GetMetrics returns.
type Metrics string

// Metrics modes.
const (
	MetricsFull      Metrics = "full"
	MetricsAggregate Metrics = "aggregate"
	MetricsNone      Metrics = "none"
)

// Modes are one container's settings.
type Modes struct {
	Logs Logs
	Exec Exec
}

// Config is a parsed cocoon.toml. The zero of each mode never appears:
// Parse fills the defaults.
type Config struct {
	// SealKey is the owner's X25519 or P-256 key logs are sealed to; nil
	// when cocoon.toml names none.
	SealKey *ecdh.PublicKey
	// ExecKeys are the owner's Ed25519 or P-256 keys; any may sign a grant.
	ExecKeys []crypto.PublicKey
	// Defaults apply to every container not named in Containers.
	Defaults Modes
	// Containers are settings by Kubernetes container name.
	Containers map[string]Modes
	// Metrics is pod-wide: GetMetrics names no container.
	Metrics Metrics
}

// Default is the configuration without cocoon.toml: what the agent did
// before observability existed. Logs and exec are the policy's to decide,
// metrics are all there.
func Default() *Config {
	return &Config{Defaults: Modes{Logs: LogsPlain, Exec: ExecPolicy}, Metrics: MetricsFull, Containers: map[string]Modes{}}
}

// For returns the settings of the container with Kubernetes name name ("" when
// the spec carries none: the defaults).
func (c *Config) For(name string) Modes {
	if m, ok := c.Containers[name]; ok && name != "" {
		return m
	}
	return c.Defaults
}

// file is cocoon.toml as written.
type file struct {
	Owner struct {
		SealKey  string   `toml:"seal_key"`
		ExecKeys []string `toml:"exec_keys"`
	} `toml:"owner"`
	Observability struct {
		modesFile
		Metrics    string               `toml:"metrics"`
		Containers map[string]modesFile `toml:"containers"`
	} `toml:"observability"`
}

type modesFile struct {
	Logs string `toml:"logs"`
	Exec string `toml:"exec"`
}

// Parse reads cocoon.toml. Unknown keys, unknown modes, bad keys, and a
// mode whose key is missing (seal without seal_key, grant without
// exec_keys) are errors: a confidential agent stops rather than run a
// pod differently from what its owner wrote. Absent modes default to seal
// when a seal key is given (else plain), grant when exec keys are given
// (else policy), and full metrics.
func Parse(b []byte) (*Config, error) {
	if len(b) > MaxConfig {
		return nil, fmt.Errorf("cocoon.toml: %d bytes, limit %d", len(b), MaxConfig)
	}
	var f file
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&f)
	if err != nil {
		return nil, fmt.Errorf("cocoon.toml: %w", err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		keys := make([]string, len(un))
		for i, k := range un {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("cocoon.toml: unknown keys %s", strings.Join(keys, ", "))
	}
	c := &Config{Containers: map[string]Modes{}}
	if f.Owner.SealKey != "" {
		if c.SealKey, err = sealedlog.ParsePublicKey([]byte(f.Owner.SealKey)); err != nil {
			return nil, fmt.Errorf("cocoon.toml: owner.seal_key: %w", err)
		}
	}
	if len(f.Owner.ExecKeys) > maxExecKeys {
		return nil, fmt.Errorf("cocoon.toml: owner.exec_keys: %d keys, limit %d", len(f.Owner.ExecKeys), maxExecKeys)
	}
	for i, k := range f.Owner.ExecKeys {
		pk, err := execgrant.ParsePublicKey([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("cocoon.toml: owner.exec_keys[%d]: %w", i, err)
		}
		c.ExecKeys = append(c.ExecKeys, pk)
	}
	base := Modes{Logs: LogsPlain, Exec: ExecPolicy}
	if c.SealKey != nil {
		base.Logs = LogsSeal
	}
	if len(c.ExecKeys) > 0 {
		base.Exec = ExecGrant
	}
	if c.Defaults, err = c.modes("observability", f.Observability.modesFile, base); err != nil {
		return nil, err
	}
	for name, m := range f.Observability.Containers {
		if name == "" {
			return nil, fmt.Errorf("cocoon.toml: observability.containers: empty container name")
		}
		if c.Containers[name], err = c.modes("observability.containers."+name, m, c.Defaults); err != nil {
			return nil, err
		}
	}
	switch m := Metrics(f.Observability.Metrics); m {
	case "":
		c.Metrics = MetricsFull
	case MetricsFull, MetricsAggregate, MetricsNone:
		c.Metrics = m
	default:
		return nil, fmt.Errorf("cocoon.toml: observability.metrics = %q: want full, aggregate or none", m)
	}
	return c, nil
}

// modes checks one table's modes; absent ones come from base.
func (c *Config) modes(where string, m modesFile, base Modes) (Modes, error) {
	out := base
	switch l := Logs(m.Logs); l {
	case "":
	case LogsSeal, LogsPlain, LogsDeny:
		out.Logs = l
	default:
		return out, fmt.Errorf("cocoon.toml: %s.logs = %q: want seal, plain or deny", where, l)
	}
	switch e := Exec(m.Exec); e {
	case "":
	case ExecGrant, ExecPolicy, ExecDeny:
		out.Exec = e
	default:
		return out, fmt.Errorf("cocoon.toml: %s.exec = %q: want grant, policy or deny", where, e)
	}
	if out.Logs == LogsSeal && c.SealKey == nil {
		return out, fmt.Errorf("cocoon.toml: %s: logs = \"seal\" needs owner.seal_key", where)
	}
	if out.Exec == ExecGrant && len(c.ExecKeys) == 0 {
		return out, fmt.Errorf("cocoon.toml: %s: exec = \"grant\" needs owner.exec_keys", where)
	}
	return out, nil
}

// FromInitdata parses initdata's cocoon.toml entry; without one it is
// Default.
func FromInitdata(data map[string]string) (*Config, error) {
	text, ok := data[InitdataKey]
	if !ok {
		return Default(), nil
	}
	return Parse([]byte(text))
}
