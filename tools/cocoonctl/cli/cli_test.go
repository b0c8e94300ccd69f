package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
)

func startAgent(t *testing.T) string {
	cfg := testagent.Config(t)
	testagent.Start(t, cfg, daemon.Options{})
	return cfg.ServerAddr
}

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Execute(args, &o, &e)
	return code, o.String(), e.String()
}

func TestAgentCommands(t *testing.T) {
	addr := startAgent(t)
	cases := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"check"}, 0, "SERVING", ""},
		{[]string{"version"}, 0, "agent_version:", ""},
		{[]string{"call", "Health.Version"}, 0, `"grpc_version"`, ""},
		{[]string{"call", "Check", "--json", `{"service":"x"}`}, 0, "SERVING", ""},
		{[]string{"call", "SetGuestDateTime", "--json", `{"sec": "not a number"}`}, 1, "", "request for SetGuestDateTime"},
		{[]string{"call", "NoSuchRpc"}, 1, "", `unknown method "NoSuchRpc"`},
		{[]string{"call", "Check", "--json", "@/nonexistent/file"}, 1, "", "no such file"},
	}
	for _, tc := range cases {
		code, out, errOut := run(append([]string{"--addr", addr}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
			t.Errorf("cocoonctl %v: code %d, stdout %q, stderr %q", tc.args, code, out, errOut)
		}
	}
}

func TestStatusCodeIsPrinted(t *testing.T) {
	addr := startAgent(t)
	// StartContainer of no container is an error whatever else the agent supports.
	code, _, errOut := run("--addr", addr, "call", "StartContainer", "--json", `{}`)
	if code == 0 || !strings.Contains(errOut, "Error: ") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
}

func TestUnreachableAgent(t *testing.T) {
	code, _, errOut := run("--addr", "unix://"+filepath.Join(t.TempDir(), "none.sock"), "check")
	if code == 0 || !strings.Contains(errOut, "dial") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	code, _, errOut = run("--addr", "bogus", "check")
	if code == 0 || !strings.Contains(errOut, "want scheme") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
}
