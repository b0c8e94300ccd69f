package config

import (
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// hostInput is one host-controlled way of setting one key.
type hostInput struct {
	key string // the rule's key
	// spelling is the name the key has in this source, as the warning names it.
	spelling string
	cmdline  string
	env      []string
	args     []string
	named    string // content of a file named by agent.config_file
	// image is extra image-file content the case starts from.
	image string
	// applied reports whether the host's value is in force.
	applied func(Config) bool
	// confidential: the host value is accepted in confidential mode too.
	confidential bool
}

// hostInputs covers every key and every host spelling of it. The values are
// the ones a host would pick to weaken the agent, plus, for keys the host
// may only tighten, a value in the strict direction.
var hostInputs = []hostInput{
	{key: "server_addr", spelling: "agent.server_addr", cmdline: "agent.server_addr=tcp://0.0.0.0:1", applied: func(c Config) bool { return c.ServerAddr == "tcp://0.0.0.0:1" }, confidential: true},
	{key: "server_addr", spelling: "KATA_AGENT_SERVER_ADDR", env: []string{"KATA_AGENT_SERVER_ADDR", "unix:///s"}, applied: func(c Config) bool { return c.ServerAddr == "unix:///s" }, confidential: true},
	{key: "server_addr", spelling: "--addr", args: []string{"--addr", "unix:///f"}, applied: func(c Config) bool { return c.ServerAddr == "unix:///f" }, confidential: true},
	{key: "log_level", spelling: "agent.log", cmdline: "agent.log=debug", applied: func(c Config) bool { return c.LogLevel == slog.LevelDebug && c.LogLevelName == "debug" }},
	{key: "log_level", spelling: "KATA_AGENT_LOG_LEVEL", env: []string{"KATA_AGENT_LOG_LEVEL", "trace"}, applied: func(c Config) bool { return c.LogLevel == slog.LevelDebug }},
	{key: "log_level", spelling: "--log-level", args: []string{"--log-level", "debug"}, applied: func(c Config) bool { return c.LogLevel == slog.LevelDebug }},
	{key: "log_level", spelling: "agent.log", cmdline: "agent.log=error", applied: func(c Config) bool { return c.LogLevel == slog.LevelError }, confidential: true},
	{key: "debug_console", spelling: "agent.debug_console", cmdline: "agent.debug_console", applied: func(c Config) bool { return c.DebugConsole }},
	{key: "debug_console", spelling: "agent.debug_console", cmdline: "agent.debug_console=0", image: "debug_console = true\n", applied: func(c Config) bool { return !c.DebugConsole }, confidential: true},
	{key: "dev_mode", spelling: "agent.devmode", cmdline: "agent.devmode=1", applied: func(c Config) bool { return c.DevMode }},
	{key: "dev_mode", spelling: "agent.devmode", cmdline: "agent.devmode=false", image: "dev_mode = true\n", applied: func(c Config) bool { return !c.DevMode }, confidential: true},
	{key: "hotplug_timeout", spelling: "agent.hotplug_timeout", cmdline: "agent.hotplug_timeout=9", applied: func(c Config) bool { return c.HotplugTimeout == 9*time.Second }, confidential: true},
	{key: "image_pull_timeout", spelling: "agent.image_pull_timeout", cmdline: "agent.image_pull_timeout=9", applied: func(c Config) bool { return c.ImagePullTimeout == 9*time.Second }, confidential: true},
	{key: "launch_process_timeout", spelling: "agent.launch_process_timeout", cmdline: "agent.launch_process_timeout=9", applied: func(c Config) bool { return c.LaunchProcessTimeout == 9*time.Second }, confidential: true},
	{key: "cdh_api_timeout", spelling: "agent.cdh_api_timeout", cmdline: "agent.cdh_api_timeout=9", applied: func(c Config) bool { return c.CDHAPITimeout == 9*time.Second }, confidential: true},
	{key: "debug_console_vport", spelling: "agent.debug_console_vport", cmdline: "agent.debug_console_vport=7", applied: func(c Config) bool { return c.DebugConsoleVport == 7 }, confidential: true},
	{key: "log_vport", spelling: "agent.log_vport", cmdline: "agent.log_vport=7", applied: func(c Config) bool { return c.LogVport == 7 }, confidential: true},
	{key: "container_pipe_size", spelling: "agent.container_pipe_size", cmdline: "agent.container_pipe_size=4096", applied: func(c Config) bool { return c.ContainerPipeSize == 4096 }, confidential: true},
	{key: "https_proxy", spelling: "agent.https_proxy", cmdline: "agent.https_proxy=http://p:1", applied: func(c Config) bool { return c.HTTPSProxy == "http://p:1" }, confidential: true},
	{key: "http_proxy", spelling: "agent.http_proxy", cmdline: "agent.http_proxy=http://p:2", applied: func(c Config) bool { return c.HTTPProxy == "http://p:2" }, confidential: true},
	// Keys from image-rs src/config.rs KernelParameterConfigs::new and CDH
	// hub/src/config/mod.rs extend_credentials_from_kernel_cmdline
	// (guest-components 8246e5e0); the values are those of image-rs's own
	// tests there (config.rs:385-418) and kata's
	// k8s-guest-pull-image-authenticated.bats.
	{key: "image_policy_file", spelling: "agent.image_policy_file", cmdline: "agent.image_policy_file=kbs:///default/image-policy/test", applied: func(c Config) bool { return c.ImagePolicyFile == "kbs:///default/image-policy/test" }},
	{key: "image_registry_auth", spelling: "agent.image_registry_auth", cmdline: "agent.image_registry_auth=kbs:///default/credentials/test", applied: func(c Config) bool { return c.ImageRegistryAuth == "kbs:///default/credentials/test" }},
	{key: "kbs_resources", spelling: "cdh.kbs_resources", cmdline: "cdh.kbs_resources=kbs:///default/key/1::/run/temp1,kbs:///default/key/2::/run/temp2", applied: func(c Config) bool {
		return c.KBSResources == "kbs:///default/key/1::/run/temp1,kbs:///default/key/2::/run/temp2"
	}},
	{key: "enable_signature_verification", spelling: "agent.enable_signature_verification", cmdline: "agent.enable_signature_verification=false", image: "enable_signature_verification = true\n", applied: func(c Config) bool { return !c.EnableSignatureVerification }},
	{key: "enable_signature_verification", spelling: "agent.enable_signature_verification", cmdline: "agent.enable_signature_verification=true", applied: func(c Config) bool { return c.EnableSignatureVerification }, confidential: true},
	{key: "no_proxy", spelling: "agent.no_proxy", cmdline: "agent.no_proxy=*.x", applied: func(c Config) bool { return c.NoProxy == "*.x" }, confidential: true},
	{key: "guest_components_rest_api", spelling: "agent.guest_components_rest_api", cmdline: "agent.guest_components_rest_api=all", applied: func(c Config) bool { return c.GuestComponentsRestAPI == "all" }},
	{key: "guest_components_rest_api", spelling: "agent.guest_components_rest_api", cmdline: "agent.guest_components_rest_api=resource", image: "guest_components_rest_api = \"all\"\n", applied: func(c Config) bool { return c.GuestComponentsRestAPI == "resource" }, confidential: true},
	{key: "guest_components_procs", spelling: "agent.guest_components_procs", cmdline: "agent.guest_components_procs=api-server-rest", image: "guest_components_procs = \"none\"\n", applied: func(c Config) bool { return c.GuestComponentsProcs == "api-server-rest" }},
	{key: "guest_components_procs", spelling: "agent.guest_components_procs", cmdline: "agent.guest_components_procs=none", applied: func(c Config) bool { return c.GuestComponentsProcs == "none" }, confidential: true},
	{key: "unified_cgroup_hierarchy", spelling: "cgroup_no_v1", cmdline: "cgroup_no_v1=all", applied: func(c Config) bool { return c.UnifiedCgroup }, confidential: true},
	{key: "unified_cgroup_hierarchy", spelling: "systemd.unified_cgroup_hierarchy", cmdline: "systemd.unified_cgroup_hierarchy=1", applied: func(c Config) bool { return c.UnifiedCgroup }, confidential: true},
	{key: "policy_file", spelling: "agent.policy_file", cmdline: "agent.policy_file=/tmp/allow-all.rego", applied: func(c Config) bool { return c.PolicyFile == "/tmp/allow-all.rego" }},
	{key: "policy_file", spelling: "KATA_AGENT_POLICY_FILE", env: []string{"KATA_AGENT_POLICY_FILE", "/tmp/a.rego"}, applied: func(c Config) bool { return c.PolicyFile == "/tmp/a.rego" }},
	{key: "policy_file", spelling: "--policy-file", args: []string{"--policy-file", "/tmp/f.rego"}, applied: func(c Config) bool { return c.PolicyFile == "/tmp/f.rego" }},
	{key: "config_file", spelling: "agent.config_file", cmdline: "agent.config_file=/host.toml", named: "policy_file = \"/host.rego\"\n", applied: func(c Config) bool { return c.ConfigFile == "/host.toml" && c.PolicyFile == "/host.rego" }},
	{key: "config_file", spelling: "--config", args: []string{"--config", "/host.toml"}, named: "policy_file = \"/host.rego\"\n", applied: func(c Config) bool { return c.ConfigFile == "/host.toml" && c.PolicyFile == "/host.rego" }},
	{key: "kata_run_dir", spelling: "agent.config_file", cmdline: "agent.config_file=/host.toml", named: "kata_run_dir = \"/\"\n", applied: func(c Config) bool { return c.KataRunDir == "/" }},
	{key: "state_dir", spelling: "agent.config_file", cmdline: "agent.config_file=/host.toml", named: "state_dir = \"/tmp/s\"\n", applied: func(c Config) bool { return c.StateDir == "/tmp/s" }},
	{key: "cgroup_parent", spelling: "agent.config_file", cmdline: "agent.config_file=/host.toml", named: "cgroup_parent = \"/host\"\n", applied: func(c Config) bool { return c.CgroupParent == "/host" }},
	{key: "decision_log", spelling: "agent.decision_log", cmdline: "agent.decision_log=/dev/null", applied: func(c Config) bool { return c.DecisionLog == "/dev/null" }},
	{key: "decision_log", spelling: "--decision-log", args: []string{"--decision-log", "/dev/null"}, applied: func(c Config) bool { return c.DecisionLog == "/dev/null" }},
	{key: "initdata_device", spelling: "agent.initdata_device", cmdline: "agent.initdata_device=/dev/vdz", applied: func(c Config) bool { return c.InitdataDevice == "/dev/vdz" }},
	{key: "initdata_device", spelling: "--initdata", args: []string{"--initdata", "/dev/vdz"}, applied: func(c Config) bool { return c.InitdataDevice == "/dev/vdz" }},
	{key: "confidential", spelling: "agent.confidential", cmdline: "agent.confidential=false", applied: func(c Config) bool { return !c.Confidential }},
	{key: "confidential", spelling: "--confidential", args: []string{"--confidential=false"}, applied: func(c Config) bool { return !c.Confidential }},
	{key: "aa_kbc_params", spelling: "agent.aa_kbc_params", cmdline: "agent.aa_kbc_params=cc_kbc::http://host-kbs", applied: func(c Config) bool { return c.AAKBCParams == "cc_kbc::http://host-kbs" }},
	{key: "attest_sample", spelling: "agent.attest_sample", cmdline: "agent.attest_sample", applied: func(c Config) bool { return c.AttestSample }},
	{key: "attest_sample", spelling: "agent.attest_sample", cmdline: "agent.attest_sample=0", image: "attest_sample = true\n", applied: func(c Config) bool { return !c.AttestSample }, confidential: true},
}

func (h hostInput) sources(imageFile string) Sources {
	fs := map[string]string{ImageFile: imageFile}
	if h.named != "" {
		fs["/host.toml"] = h.named
	}
	return Sources{Cmdline: h.cmdline, LookupEnv: env(h.env...), Args: h.args, ReadFile: files(fs)}
}

// TestHostInputs: outside confidential mode every host input applies, as in
// Kata; in confidential mode (set by the image) only the ones that cannot
// weaken the agent do, and every other one is named in the warning.
func TestHostInputs(t *testing.T) {
	for _, h := range hostInputs {
		name := h.key + "/" + strings.TrimSpace(h.cmdline+" "+strings.Join(h.env, "=")+" "+strings.Join(h.args, " "))
		t.Run(name, func(t *testing.T) {
			r, err := Load(h.sources(h.image))
			if err != nil {
				t.Fatal(err)
			}
			if !h.applied(r.Config) {
				t.Errorf("not confidential: host value not applied: %+v", r.Config)
			}
			if len(r.HostIgnored) != 0 {
				t.Errorf("not confidential: ignored %v", r.HostIgnored)
			}

			r, err = Load(h.sources(h.image + "confidential = true\n"))
			if err != nil {
				t.Fatal(err)
			}
			if !r.Config.Confidential {
				t.Fatal("the image's confidential = true was lost")
			}
			if got := h.applied(r.Config); got != h.confidential {
				t.Errorf("confidential: host value applied = %v, want %v: %+v", got, h.confidential, r.Config)
			}
			if ignored := slices.Contains(r.HostIgnored, h.spelling); ignored == h.confidential {
				t.Errorf("confidential: ignored = %v, want %q named iff refused", r.HostIgnored, h.spelling)
			}
		})
	}
}

// TestEveryKeyHasARule: a Config field without a trust rule would be taken
// from the host in confidential mode without anyone deciding it should.
func TestEveryKeyHasARule(t *testing.T) {
	covered := map[string]bool{}
	for _, r := range trustRules {
		for _, f := range r.fields {
			if _, ok := reflect.TypeOf(Config{}).FieldByName(f); !ok {
				t.Errorf("rule %s names unknown field %s", r.key, f)
			}
			covered[f] = true
		}
	}
	tested := map[string]bool{}
	for _, h := range hostInputs {
		tested[h.key] = true
	}
	for _, f := range reflect.VisibleFields(reflect.TypeOf(Config{})) {
		// A field no source can set (GuestInit) needs no rule, and must
		// have none.
		if f.Tag.Get("trust") == "not-a-key" {
			if f.Tag.Get("toml") != "-" || covered[f.Name] {
				t.Errorf("Config.%s is marked not a key but a source could set it", f.Name)
			}
			continue
		}
		if !covered[f.Name] {
			t.Errorf("Config.%s has no trust rule", f.Name)
		}
	}
	for _, r := range trustRules {
		if !tested[r.key] {
			t.Errorf("rule %s has no host input case", r.key)
		}
	}
}

// The host can ask for confidential mode (it only makes the agent
// stricter); from then on the same keys are refused as when the image asks.
func TestHostTurnsConfidentialOn(t *testing.T) {
	for _, src := range []Sources{
		{Cmdline: "agent.confidential agent.policy_file=/tmp/p.rego"},
		{Args: []string{"--confidential", "--policy-file", "/tmp/p.rego"}},
		{Cmdline: "agent.config_file=/host.toml", ReadFile: files(map[string]string{"/host.toml": "confidential = true\npolicy_file = \"/tmp/p.rego\"\n"})},
	} {
		r, err := Load(src)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Config.Confidential || r.Config.PolicyFile != "" {
			t.Errorf("%+v: confidential %v, policy file %q", src, r.Config.Confidential, r.Config.PolicyFile)
		}
	}
}

// agent.config_file cannot replace the image's file, and the image's values
// stay in force.
func TestImageFileCannotBeMoved(t *testing.T) {
	r, err := Load(Sources{
		Cmdline: "agent.config_file=/host.toml",
		ReadFile: files(map[string]string{
			ImageFile:    "confidential = true\npolicy_file = \"/etc/kata-opa/coco-default.rego\"\n",
			"/host.toml": "confidential = false\npolicy_file = \"/tmp/allow-all.rego\"\n",
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Config
	if !c.Confidential || c.PolicyFile != "/etc/kata-opa/coco-default.rego" || c.ConfigFile != ImageFile {
		t.Fatalf("host file replaced the image's: %+v", c)
	}
	if !slices.Equal(r.HostIgnored, []string{"agent.config_file"}) {
		t.Fatalf("ignored %v", r.HostIgnored)
	}
}

// Every refused spelling is named once, in a stable order, for one warning line.
func TestHostIgnoredOnce(t *testing.T) {
	r, err := Load(Sources{
		Cmdline:   "agent.policy_file=/a agent.policy_file=/b agent.devmode agent.confidential=0",
		LookupEnv: env("KATA_AGENT_POLICY_FILE", "/c"),
		ReadFile:  files(map[string]string{ImageFile: "confidential = true\n"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"KATA_AGENT_POLICY_FILE", "agent.confidential", "agent.devmode", "agent.policy_file"}
	if !slices.Equal(r.HostIgnored, want) {
		t.Fatalf("ignored %v, want %v", r.HostIgnored, want)
	}
}

// Without an image file the agent behaves as before: no error, defaults.
func TestNoImageFile(t *testing.T) {
	r, err := Load(Sources{ReadFile: files(nil)})
	if err != nil || r.Config.Confidential || r.Config.ConfigFile != "" {
		t.Fatalf("%+v %v", r.Config, err)
	}
	if _, err := Load(Sources{ReadFile: files(map[string]string{ImageFile: "confidential = maybe"})}); err == nil || !strings.Contains(err.Error(), ImageFile) {
		t.Fatalf("broken image file: %v", err)
	}
}

// FuzzConfidentialCmdline: whatever the host puts on the kernel command
// line, a confidential image keeps its own value of every key the host may
// not weaken.
func FuzzConfidentialCmdline(f *testing.F) {
	for _, h := range hostInputs {
		if h.cmdline != "" {
			f.Add(h.cmdline)
		}
	}
	f.Add("agent.config_file=/x agent.confidential=0 agent.policy_file=/p agent.attest_sample")
	image := "confidential = true\npolicy_file = \"/etc/kata-opa/coco-default.rego\"\n"
	want, err := Load(Sources{ReadFile: files(map[string]string{ImageFile: image})})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		r, err := Load(Sources{Cmdline: cmdline, ReadFile: files(map[string]string{ImageFile: image, "/x": "confidential = false\n"})})
		if err != nil {
			return
		}
		got, w := reflect.ValueOf(r.Config), reflect.ValueOf(want.Config)
		for _, rule := range trustRules {
			if rule.trust != imageOnly {
				continue
			}
			for _, fld := range rule.fields {
				if !got.FieldByName(fld).Equal(w.FieldByName(fld)) {
					t.Fatalf("%q moved %s to %v", cmdline, fld, got.FieldByName(fld))
				}
			}
		}
		c := r.Config
		if !c.Confidential || c.DebugConsole || c.DevMode || c.AttestSample || c.LogLevel < slog.LevelInfo {
			t.Fatalf("%q weakened a confidential agent: %+v", cmdline, c)
		}
	})
}

// A confidential image never opens a file the host names, so a missing or
// broken one cannot stop the agent either.
func TestConfidentialNeverReadsHostFile(t *testing.T) {
	var opened []string
	r, err := Load(Sources{
		Cmdline: "agent.config_file=/missing.toml agent.frobnicate",
		Args:    []string{"--config", "/also-missing.toml"},
		ReadFile: func(p string) ([]byte, error) {
			opened = append(opened, p)
			return files(map[string]string{ImageFile: "confidential = true\n"})(p)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(opened, []string{ImageFile}) {
		t.Errorf("opened %v, want only the image file", opened)
	}
	if !slices.Equal(r.HostIgnored, []string{"--config", "agent.config_file"}) || !slices.Equal(r.Ignored, []string{"agent.frobnicate"}) {
		t.Errorf("host ignored %v, unknown %v", r.HostIgnored, r.Ignored)
	}
}
