package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxCmdline bounds what we are willing to parse; the kernel caps its own
// command line far below this.
const maxCmdline = 64 << 10

// Unknown reports a kernel command-line key the agent does not understand.
type Unknown struct{ Key string }

// applyCmdline applies every agent.* parameter of a kernel command line to c.
// Parameters without the agent. prefix are ignored except cgroup_no_v1 and
// systemd.unified_cgroup_hierarchy. Unknown agent.* keys are returned so the
// caller can log them; a malformed value of a known key is an error.
func applyCmdline(c *Config, cmdline string) ([]Unknown, error) {
	if len(cmdline) > maxCmdline {
		return nil, fmt.Errorf("kernel command line is %d bytes, more than %d", len(cmdline), maxCmdline)
	}
	var unknown []Unknown
	for _, field := range strings.Fields(cmdline) {
		key, value, hasValue := strings.Cut(field, "=")
		switch {
		case key == "cgroup_no_v1":
			c.UnifiedCgroup = c.UnifiedCgroup || value == "all"
			continue
		case key == "systemd.unified_cgroup_hierarchy":
			b, err := parseBool(value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			c.UnifiedCgroup = b
			continue
		case key == "cdh.kbs_resources":
			// The data hub's own key (CDH hub/src/config/mod.rs
			// extend_credentials_from_kernel_cmdline).
			if _, err := ParseKBSResources(value); err != nil {
				return nil, fmt.Errorf("kernel parameter %s: %w", key, err)
			}
			c.KBSResources = value
			continue
		case !strings.HasPrefix(key, "agent."):
			continue
		}
		known, err := applyAgentParam(c, key, value, hasValue)
		if err != nil {
			return nil, fmt.Errorf("kernel parameter %s: %w", key, err)
		}
		if !known {
			unknown = append(unknown, Unknown{Key: key})
		}
	}
	return unknown, nil
}

// applyAgentParam sets one agent.* parameter. It reports whether the key is known.
func applyAgentParam(c *Config, key, value string, hasValue bool) (bool, error) {
	var err error
	switch key {
	case "agent.debug_console":
		// A bare flag enables it, as in Kata.
		c.DebugConsole = true
		if hasValue {
			c.DebugConsole, err = parseBool(value)
		}
	case "agent.devmode":
		c.DevMode = true
		if hasValue {
			c.DevMode, err = parseBool(value)
		}
	case "agent.log":
		c.LogLevel, err = ParseLogLevel(value)
		c.LogLevelName = value
	case "agent.server_addr":
		c.ServerAddr, err = nonEmpty(value)
	case "agent.config_file":
		c.ConfigFile, err = nonEmpty(value)
	case "agent.hotplug_timeout":
		c.HotplugTimeout, err = parseSeconds(value)
	case "agent.image_pull_timeout":
		c.ImagePullTimeout, err = parseSeconds(value)
	case "agent.launch_process_timeout":
		c.LaunchProcessTimeout, err = parseSeconds(value)
	case "agent.cdh_api_timeout":
		c.CDHAPITimeout, err = parseSeconds(value)
	case "agent.debug_console_vport":
		c.DebugConsoleVport, err = parsePort(value)
	case "agent.log_vport":
		c.LogVport, err = parsePort(value)
	case "agent.container_pipe_size":
		c.ContainerPipeSize, err = parsePipeSize(value)
	case "agent.https_proxy":
		c.HTTPSProxy = value
	case "agent.http_proxy":
		c.HTTPProxy = value
	case "agent.no_proxy":
		c.NoProxy = value
	case "agent.image_policy_file":
		c.ImagePolicyFile, err = nonEmpty(value)
	case "agent.enable_signature_verification":
		// image-rs takes only "true"; Kata's other spellings of true are
		// accepted too, which can only turn verification on.
		c.EnableSignatureVerification, err = parseBool(value)
	case "agent.image_registry_auth":
		c.ImageRegistryAuth, err = nonEmpty(value)
	case "agent.guest_components_rest_api":
		c.GuestComponentsRestAPI, err = oneOf(value, "all", "attestation", "resource")
	case "agent.guest_components_procs":
		c.GuestComponentsProcs, err = oneOf(value, "attestation-agent", "confidential-data-hub", "api-server-rest", "none")
	case "agent.policy_file":
		c.PolicyFile, err = nonEmpty(value)
	case "agent.decision_log":
		c.DecisionLog, err = nonEmpty(value)
	case "agent.initdata_device":
		c.InitdataDevice, err = nonEmpty(value)
	case "agent.confidential":
		c.Confidential = true
		if hasValue {
			c.Confidential, err = parseBool(value)
		}
	case "agent.aa_kbc_params":
		c.AAKBCParams, err = nonEmpty(value)
	case "agent.attest_sample":
		c.AttestSample = true
		if hasValue {
			c.AttestSample, err = parseBool(value)
		}
	default:
		return false, nil
	}
	return true, err
}

// parseBool accepts Kata's spellings: true/false and integers (non-zero is true).
func parseBool(s string) (bool, error) {
	if b, err := strconv.ParseBool(s); err == nil {
		return b, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return false, fmt.Errorf("invalid boolean %q", s)
	}
	return n != 0, nil
}

// maxTimeout keeps a hostile value from overflowing time.Duration.
const maxTimeout = 24 * time.Hour

func parseSeconds(s string) (time.Duration, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid timeout %q: want whole seconds", s)
	}
	d := time.Duration(n) * time.Second
	if d > maxTimeout {
		return 0, fmt.Errorf("timeout %s exceeds %s", d, maxTimeout)
	}
	return d, nil
}

func parsePort(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid vsock port %q", s)
	}
	return uint32(n), nil
}

// maxPipeSize is the kernel's default /proc/sys/fs/pipe-max-size.
const maxPipeSize = 1 << 20

func parsePipeSize(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid pipe size %q", s)
	}
	if n < 0 || n > maxPipeSize {
		return 0, fmt.Errorf("pipe size %d out of range [0, %d]", n, maxPipeSize)
	}
	return int32(n), nil
}

func nonEmpty(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("missing value")
	}
	return s, nil
}

func oneOf(s string, allowed ...string) (string, error) {
	for _, a := range allowed {
		if s == a {
			return s, nil
		}
	}
	return "", fmt.Errorf("invalid value %q: want one of %s", s, strings.Join(allowed, ", "))
}
