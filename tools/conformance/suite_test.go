package conformance_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/tools/cocoonctl/cli"
	"github.com/cocoon-tee/cocoon/tools/conformance"
)

// The whole suite against the real agent, one subtest per scenario, in the
// suite's order (they share the sandbox the first one creates).
func TestSuiteAgainstCocoon(t *testing.T) {
	a := startAgent(t)
	ctx := context.Background()
	h, err := conformance.NewHarness(ctx, conformance.Config{Addr: a.addr, KataRunDir: a.runDir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, s := range conformance.Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			r := conformance.RunOne(ctx, h, s, 0)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		})
	}
}

// cocoonctl conformance prints one line per scenario and the summary, and
// its exit code says whether everything passed.
func TestCocoonctlConformance(t *testing.T) {
	a := startAgent(t)
	var out, errOut bytes.Buffer
	code := cli.Execute([]string{"--addr", a.addr, "conformance", "--rootfs-dir", a.runDir, "--run", "^container/lifecycle$|^exit/3$"}, &out, &errOut)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if code != 0 || len(lines) != 5 || lines[4] != "4 passed, 0 failed" {
		t.Fatalf("exit %d, stdout:\n%s\nstderr: %s", code, out.String(), errOut.String())
	}
	for i, name := range []string{"pod/create-sandbox", "container/lifecycle", "exit/3", "pod/destroy-sandbox"} {
		if !strings.HasPrefix(lines[i], "ok ") || !strings.Contains(lines[i], name) {
			t.Errorf("line %d %q, want ok %s", i, lines[i], name)
		}
	}
}

// Against an agent that cannot run containers the suite reports failures
// and the command exits 1.
func TestCocoonctlConformanceReportsFailures(t *testing.T) {
	var out, errOut bytes.Buffer
	code := cli.Execute([]string{"--addr", "unix:///nonexistent/agent.sock", "conformance"}, &out, &errOut)
	if code == 0 {
		t.Fatalf("exit 0 for an unreachable agent: %s", out.String())
	}
}
