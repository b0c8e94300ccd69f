package config

import (
	"reflect"
	"slices"
)

// ImageFile is the configuration the guest image carries on its dm-verity
// root. Its path is built in so that no host input can move it: in
// confidential mode it is, with initdata, the only source of settings that
// could weaken the agent.
const ImageFile = "/etc/cocoon/agent.toml"

// trust says who may set a key in confidential mode. Outside confidential
// mode every source may set every key, in Kata's precedence.
type trust int

const (
	// hostOK keys only cost availability, which the host controls anyway.
	hostOK trust = iota
	// stricterOnly keys may come from the host when the host's value is at
	// least as strict as the image's (see rule.stricter).
	stricterOnly
	// imageOnly keys come only from the image file (policy and KBS also
	// from initdata, which the TEE binds).
	imageOnly
)

// rule is one row of the trust table: a key, the Config fields it sets, its
// spellings in each host source, and who may set it in confidential mode.
type rule struct {
	key     string // TOML key in the image file
	fields  []string
	cmdline []string // kernel command-line spellings
	env     string
	flag    string
	trust   trust
	// stricter reports whether host's value is no weaker than image's.
	// For log_level less verbose is stricter: debug output is for
	// developers, and the console is the host's.
	stricter func(image, host *Config) bool
}

// trustRules is the decision, key by key; docs/security.md has it as a
// table. TestEveryKeyHasARule keeps it complete.
var trustRules = []rule{
	{key: "server_addr", fields: []string{"ServerAddr"}, cmdline: []string{"agent.server_addr"}, env: "KATA_AGENT_SERVER_ADDR", flag: "--addr", trust: hostOK},
	{key: "log_level", fields: []string{"LogLevel", "LogLevelName"}, cmdline: []string{"agent.log"}, env: "KATA_AGENT_LOG_LEVEL", flag: "--log-level", trust: stricterOnly,
		stricter: func(image, host *Config) bool { return host.LogLevel >= image.LogLevel }},
	{key: "debug_console", fields: []string{"DebugConsole"}, cmdline: []string{"agent.debug_console"}, trust: stricterOnly,
		stricter: func(_, host *Config) bool { return !host.DebugConsole }},
	{key: "dev_mode", fields: []string{"DevMode"}, cmdline: []string{"agent.devmode"}, trust: stricterOnly,
		stricter: func(_, host *Config) bool { return !host.DevMode }},
	{key: "hotplug_timeout", fields: []string{"HotplugTimeout"}, cmdline: []string{"agent.hotplug_timeout"}, trust: hostOK},
	{key: "image_pull_timeout", fields: []string{"ImagePullTimeout"}, cmdline: []string{"agent.image_pull_timeout"}, trust: hostOK},
	{key: "launch_process_timeout", fields: []string{"LaunchProcessTimeout"}, cmdline: []string{"agent.launch_process_timeout"}, trust: hostOK},
	{key: "cdh_api_timeout", fields: []string{"CDHAPITimeout"}, cmdline: []string{"agent.cdh_api_timeout"}, trust: hostOK},
	{key: "debug_console_vport", fields: []string{"DebugConsoleVport"}, cmdline: []string{"agent.debug_console_vport"}, trust: hostOK},
	{key: "log_vport", fields: []string{"LogVport"}, cmdline: []string{"agent.log_vport"}, trust: hostOK},
	{key: "container_pipe_size", fields: []string{"ContainerPipeSize"}, cmdline: []string{"agent.container_pipe_size"}, trust: hostOK},
	{key: "https_proxy", fields: []string{"HTTPSProxy"}, cmdline: []string{"agent.https_proxy"}, trust: hostOK},
	{key: "http_proxy", fields: []string{"HTTPProxy"}, cmdline: []string{"agent.http_proxy"}, trust: hostOK},
	{key: "no_proxy", fields: []string{"NoProxy"}, cmdline: []string{"agent.no_proxy"}, trust: hostOK},
	// A host-named image policy could only be weaker than the image's or
	// initdata's (without either, every pull is refused), and host-named
	// credentials or KBS resources are documents the TEE would fetch on the
	// host's say: all three come from the image file or initdata only.
	{key: "image_policy_file", fields: []string{"ImagePolicyFile"}, cmdline: []string{"agent.image_policy_file"}, trust: imageOnly},
	{key: "image_registry_auth", fields: []string{"ImageRegistryAuth"}, cmdline: []string{"agent.image_registry_auth"}, trust: imageOnly},
	{key: "kbs_resources", fields: []string{"KBSResources"}, cmdline: []string{"cdh.kbs_resources"}, trust: imageOnly},
	// Turning verification on is stricter; off, weaker.
	{key: "enable_signature_verification", fields: []string{"EnableSignatureVerification"}, cmdline: []string{"agent.enable_signature_verification"}, trust: stricterOnly,
		stricter: func(_, host *Config) bool { return host.EnableSignatureVerification }},
	// "all" serves both halves of the workload API; the host may narrow it
	// to one, never widen it.
	{key: "guest_components_rest_api", fields: []string{"GuestComponentsRestAPI"}, cmdline: []string{"agent.guest_components_rest_api"}, trust: stricterOnly,
		stricter: func(image, _ *Config) bool { return image.GuestComponentsRestAPI == "all" }},
	// Only api-server-rest starts the workload API; the host may turn it off.
	{key: "guest_components_procs", fields: []string{"GuestComponentsProcs"}, cmdline: []string{"agent.guest_components_procs"}, trust: stricterOnly,
		stricter: func(_, host *Config) bool { return host.GuestComponentsProcs != "api-server-rest" }},
	{key: "unified_cgroup_hierarchy", fields: []string{"UnifiedCgroup"}, cmdline: []string{"cgroup_no_v1", "systemd.unified_cgroup_hierarchy"}, trust: hostOK},
	{key: "policy_file", fields: []string{"PolicyFile"}, cmdline: []string{"agent.policy_file"}, env: "KATA_AGENT_POLICY_FILE", flag: "--policy-file", trust: imageOnly},
	{key: "config_file", fields: []string{"ConfigFile"}, cmdline: []string{"agent.config_file"}, flag: "--config", trust: imageOnly},
	{key: "kata_run_dir", fields: []string{"KataRunDir"}, trust: imageOnly},
	{key: "state_dir", fields: []string{"StateDir"}, trust: imageOnly},
	{key: "cgroup_parent", fields: []string{"CgroupParent"}, trust: imageOnly},
	{key: "decision_log", fields: []string{"DecisionLog"}, cmdline: []string{"agent.decision_log"}, flag: "--decision-log", trust: imageOnly},
	{key: "initdata_device", fields: []string{"InitdataDevice"}, cmdline: []string{"agent.initdata_device"}, flag: "--initdata", trust: imageOnly},
	{key: "confidential", fields: []string{"Confidential"}, cmdline: []string{"agent.confidential"}, flag: "--confidential", trust: stricterOnly,
		stricter: func(_, host *Config) bool { return host.Confidential }},
	{key: "aa_kbc_params", fields: []string{"AAKBCParams"}, cmdline: []string{"agent.aa_kbc_params"}, trust: imageOnly},
	{key: "attest_sample", fields: []string{"AttestSample"}, cmdline: []string{"agent.attest_sample"}, trust: stricterOnly,
		stricter: func(_, host *Config) bool { return !host.AttestSample }},
}

// source is a host-controlled input in confidential mode.
type source int

const (
	fromCmdline source = iota
	fromEnv
	fromFlags
)

// spellings are the rule's names in src.
func (r rule) spellings(src source) []string {
	switch src {
	case fromEnv:
		return nonEmptyOnly(r.env)
	case fromFlags:
		return nonEmptyOnly(r.flag)
	}
	return r.cmdline
}

func nonEmptyOnly(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// admit keeps from host only what the trust table lets the host decide on
// top of trusted, and returns the result with the spellings of the keys it
// refused. A refused key keeps trusted's value.
func admit(trusted, host Config, src source, cmdlineKeys map[string]bool) (Config, []string) {
	var refused []string
	tv, hv := reflect.ValueOf(&trusted).Elem(), reflect.ValueOf(&host).Elem()
	for _, r := range trustRules {
		if r.trust == hostOK || !r.differs(tv, hv) {
			continue
		}
		if r.trust == stricterOnly && r.stricter(&trusted, &host) {
			continue
		}
		for _, f := range r.fields {
			hv.FieldByName(f).Set(tv.FieldByName(f))
		}
		for _, s := range r.spellings(src) {
			// A rule with several command-line spellings names the ones given.
			if src != fromCmdline || cmdlineKeys[s] {
				refused = append(refused, s)
			}
		}
	}
	return host, refused
}

func (r rule) differs(a, b reflect.Value) bool {
	for _, f := range r.fields {
		if !a.FieldByName(f).Equal(b.FieldByName(f)) {
			return true
		}
	}
	return false
}

// sortedUnique prepares the refused spellings for one warning line.
func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
