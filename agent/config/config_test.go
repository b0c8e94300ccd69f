package config

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func files(m map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if s, ok := m[p]; ok {
			return []byte(s), nil
		}
		return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
	}
}

func TestDefaults(t *testing.T) {
	r, err := Load(Sources{})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Config
	if c.ServerAddr != "vsock://-1:1024" || c.HotplugTimeout != 3*time.Second || c.ImagePullTimeout != 1200*time.Second || c.LogLevel != slog.LevelInfo {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestCmdline(t *testing.T) {
	cmdline := "console=ttyS0 quiet agent.log=debug agent.debug_console agent.devmode=0 " +
		"agent.server_addr=vsock://-1:2048 agent.hotplug_timeout=10 agent.image_pull_timeout=30 " +
		"agent.launch_process_timeout=9 agent.debug_console_vport=1111 agent.log_vport=1112 " +
		"agent.container_pipe_size=65536 agent.https_proxy=http://p:3128 agent.no_proxy=*.local " +
		"agent.guest_components_rest_api=all agent.guest_components_procs=none cgroup_no_v1=all " +
		"agent.frobnicate=1 agent.policy_file=/etc/p.rego"
	r, err := Load(Sources{Cmdline: cmdline})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Config
	checks := []struct {
		name string
		ok   bool
	}{
		{"log", c.LogLevel == slog.LevelDebug},
		{"debug_console", c.DebugConsole},
		{"devmode", !c.DevMode},
		{"server_addr", c.ServerAddr == "vsock://-1:2048"},
		{"hotplug", c.HotplugTimeout == 10*time.Second},
		{"pull", c.ImagePullTimeout == 30*time.Second},
		{"launch", c.LaunchProcessTimeout == 9*time.Second},
		{"console vport", c.DebugConsoleVport == 1111},
		{"log vport", c.LogVport == 1112},
		{"pipe", c.ContainerPipeSize == 65536},
		{"proxy", c.HTTPSProxy == "http://p:3128" && c.NoProxy == "*.local"},
		{"gc", c.GuestComponentsRestAPI == "all" && c.GuestComponentsProcs == "none"},
		{"cgroup", c.UnifiedCgroup},
		{"policy", c.PolicyFile == "/etc/p.rego"},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s not applied: %+v", ch.name, c)
		}
	}
	if len(r.Ignored) != 1 || r.Ignored[0] != "agent.frobnicate" {
		t.Errorf("ignored = %v, want [agent.frobnicate]", r.Ignored)
	}
}

func TestPrecedence(t *testing.T) {
	src := Sources{
		Cmdline:   "agent.config_file=/etc/agent.toml agent.log=warn",
		ReadFile:  files(map[string]string{"/etc/agent.toml": "server_addr = \"tcp://127.0.0.1:1\"\nlog_level = \"debug\"\nhotplug_timeout = 7\npolicy_file = \"/file.rego\"\n"}),
		LookupEnv: env("KATA_AGENT_POLICY_FILE", "/env.rego"),
		Args:      []string{"--addr", "unix:///flag.sock"},
	}
	r, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	c := r.Config
	if c.ServerAddr != "unix:///flag.sock" {
		t.Errorf("flag must win: %s", c.ServerAddr)
	}
	if c.LogLevel != slog.LevelWarn {
		t.Errorf("cmdline must beat file: %v", c.LogLevel)
	}
	if c.HotplugTimeout != 7*time.Second {
		t.Errorf("file value lost: %v", c.HotplugTimeout)
	}
	if c.PolicyFile != "/env.rego" {
		t.Errorf("env must beat file: %s", c.PolicyFile)
	}
	if c.ConfigFile != "/etc/agent.toml" {
		t.Errorf("config file = %q", c.ConfigFile)
	}
}

func TestEnvOverridesCmdline(t *testing.T) {
	r, err := Load(Sources{
		Cmdline:   "agent.server_addr=vsock://-1:1024",
		LookupEnv: env("KATA_AGENT_SERVER_ADDR", "unix://@/tmp/kata-agent.socket", "KATA_AGENT_LOG_LEVEL", "error"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Config.ServerAddr != "unix://@/tmp/kata-agent.socket" || r.Config.LogLevel != slog.LevelError {
		t.Fatalf("env not applied: %+v", r.Config)
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name string
		src  Sources
		want string
	}{
		{"log level", Sources{Cmdline: "agent.log=loud"}, "invalid log level"},
		{"timeout", Sources{Cmdline: "agent.hotplug_timeout=3s"}, "agent.hotplug_timeout"},
		{"huge timeout", Sources{Cmdline: "agent.image_pull_timeout=999999999"}, "exceeds"},
		{"negative pipe", Sources{Cmdline: "agent.container_pipe_size=-1"}, "pipe size"},
		{"rest api", Sources{Cmdline: "agent.guest_components_rest_api=everything"}, "want one of"},
		{"empty addr", Sources{Cmdline: "agent.server_addr="}, "missing value"},
		{"env level", Sources{LookupEnv: env("KATA_AGENT_LOG_LEVEL", "x")}, "KATA_AGENT_LOG_LEVEL"},
		{"flag", Sources{Args: []string{"--nope"}}, "flags"},
		{"extra arg", Sources{Args: []string{"serve"}}, "unexpected argument"},
		{"missing file", Sources{Args: []string{"--config", "/x.toml"}, ReadFile: files(nil)}, "config file"},
		{"bad toml", Sources{Args: []string{"--config", "/x.toml"}, ReadFile: files(map[string]string{"/x.toml": "server_addr = ["})}, "/x.toml"},
		{"unknown toml key", Sources{Args: []string{"--config", "/x.toml"}, ReadFile: files(map[string]string{"/x.toml": "colour = 1"})}, "unknown keys: colour"},
		{"toml type", Sources{Args: []string{"--config", "/x.toml"}, ReadFile: files(map[string]string{"/x.toml": "hotplug_timeout = \"3\""})}, "/x.toml"},
		{"toml pipe", Sources{Args: []string{"--config", "/x.toml"}, ReadFile: files(map[string]string{"/x.toml": "container_pipe_size = -5"})}, "container_pipe_size"},
		{"long cmdline", Sources{Cmdline: strings.Repeat("a", maxCmdline+1)}, "kernel command line"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "false": false, "1": true, "0": false, "42": true} {
		got, err := parseBool(in)
		if err != nil || got != want {
			t.Errorf("parseBool(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := parseBool("yes please"); err == nil {
		t.Error("parseBool accepted garbage")
	}
}

func FuzzCmdline(f *testing.F) {
	for _, s := range []string{"", "agent.log=debug", "agent.debug_console agent.hotplug_timeout=5", "agent.server_addr=vsock://-1:1024 =", "agent.=", "cgroup_no_v1=all agent.container_pipe_size=4096"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		r, err := Load(Sources{Cmdline: cmdline})
		if err != nil {
			return
		}
		if r.Config.ContainerPipeSize < 0 || r.Config.HotplugTimeout > maxTimeout || r.Config.ImagePullTimeout > maxTimeout {
			t.Fatalf("out-of-range value accepted from %q: %+v", cmdline, r.Config)
		}
	})
}

func FuzzConfigFile(f *testing.F) {
	f.Add("server_addr = \"unix:///a\"\nhotplug_timeout = 5\n")
	f.Add("log_level = \"debug\"\ncontainer_pipe_size = 10")
	f.Add("[x]\ny=1")
	f.Fuzz(func(t *testing.T, body string) {
		r, err := Load(Sources{Args: []string{"--config", "/c"}, ReadFile: func(string) ([]byte, error) { return []byte(body), nil }})
		if err != nil {
			return
		}
		if r.Config.ContainerPipeSize < 0 || r.Config.HotplugTimeout > maxTimeout {
			t.Fatalf("out-of-range value accepted: %+v", r.Config)
		}
	})
}

func TestCgroupParentFromFile(t *testing.T) {
	for _, tc := range []struct {
		toml string
		want string
		ok   bool
	}{
		{`cgroup_parent = "/pods/cocoon"`, "/pods/cocoon", true},
		{``, "/cocoon", true},
		{`cgroup_parent = "cocoon"`, "", false},
		{`cgroup_parent = "/"`, "", false},
		{`cgroup_parent = "/a/../b"`, "", false},
		{`cgroup_parent = "/a/"`, "", false},
	} {
		r, err := Load(Sources{Args: []string{"--config", "f.toml"}, ReadFile: func(string) ([]byte, error) { return []byte(tc.toml), nil }})
		if (err == nil) != tc.ok {
			t.Errorf("%q: error %v, want ok=%v", tc.toml, err, tc.ok)
			continue
		}
		if tc.ok && r.Config.CgroupParent != tc.want {
			t.Errorf("%q: cgroup parent %q, want %q", tc.toml, r.Config.CgroupParent, tc.want)
		}
	}
}
