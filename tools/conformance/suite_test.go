package conformance_test

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/rpc"
	"github.com/cocoon-tee/cocoon/agent/server"
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
	for _, s := range conformance.Scenarios(conformance.Config{}) {
		t.Run(s.Name, func(t *testing.T) {
			if testing.Short() && strings.HasPrefix(s.Name, "stress/") {
				t.Skip("stress scenario: not in the -short tier")
			}
			r := conformance.RunOne(ctx, h, s, 0)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		})
	}
}

// The pod scenarios in runtime-rs's order and shapes: no Check before the
// sandbox, neighbours before routes, exec without capabilities or AppArmor
// profile, and no DestroySandbox at the end.
func TestSuiteAgainstCocoonRuntimeRs(t *testing.T) {
	a := startAgent(t)
	var out bytes.Buffer
	cfg := conformance.Config{Addr: a.addr, KataRunDir: a.runDir, Runtime: conformance.RuntimeRs,
		Run: regexp.MustCompile("^(pod|container|exec|storage)/"), Out: &out}
	results, err := conformance.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range results {
		names[r.Name] = true
		if r.Err != nil {
			t.Errorf("%s: %v", r.Name, r.Err)
		}
	}
	if !names["pod/kubernetes-workload"] || !names["pod/destroy-sandbox"] {
		t.Errorf("scenarios ran:\n%s", out.String())
	}
	// runtime-rs stops the VM here instead of sending DestroySandbox. The
	// in-process agent stops when the test ends, and its shutdown must
	// take the sandbox's namespaces and storages down: otherwise removing
	// the test's temp dirs fails on the namespace mounts left behind.
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

// Against an agent that serves the API but runs no containers (every
// container rpc Unimplemented) the suite reports each failure on its line,
// the summary counts them and the command exits 1; an unreachable agent is
// an error too.
func TestCocoonctlConformanceReportsFailures(t *testing.T) {
	addr := startEmptyAgent(t)
	var out, errOut bytes.Buffer
	code := cli.Execute([]string{"--addr", addr, "conformance", "--rootfs-dir", t.TempDir(), "--run", "^exit/3$"}, &out, &errOut)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if code != 1 || len(lines) != 4 || lines[3] != "0 passed, 3 failed" {
		t.Fatalf("exit %d, stdout:\n%s", code, out.String())
	}
	for _, l := range lines[:3] {
		if !strings.HasPrefix(l, "FAIL ") || !strings.Contains(l, "Unimplemented") {
			t.Errorf("line %q does not report the Unimplemented failure", l)
		}
	}
	out.Reset()
	code = cli.Execute([]string{"--addr", "unix:///nonexistent/agent.sock", "conformance"}, &out, &errOut)
	if code == 0 {
		t.Fatalf("exit 0 for an unreachable agent: %s", out.String())
	}
	out.Reset()
	errOut.Reset()
	code = cli.Execute([]string{"--addr", addr, "conformance", "--runtime", "python"}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), `runtime "python"`) {
		t.Fatalf("--runtime python: exit %d, stderr %q", code, errOut.String())
	}
}

// startEmptyAgent serves the agent API with no domain objects behind it.
func startEmptyAgent(t *testing.T) string {
	srv, err := server.New(server.Options{Agent: rpc.New(rpc.Deps{}), Health: rpc.Health{AgentVersion: "empty"}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "empty.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(context.Background(), l) }()
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

// The attack group against a confidential cocoon agent: every attempt is
// refused and the pod keeps working.
func TestAttackScenariosAgainstConfidentialCocoon(t *testing.T) {
	a, stateDir := startConfidentialAgent(t)
	var out bytes.Buffer
	cfg := conformance.Config{Addr: a.addr, KataRunDir: a.runDir, StateDir: stateDir, Confidential: true,
		Run: regexp.MustCompile("^attack/"), Out: &out}
	results, err := conformance.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	attacks := 0
	for _, r := range results {
		if strings.HasPrefix(r.Name, "attack/") {
			attacks++
		}
		if r.Err != nil {
			t.Errorf("%s: %v", r.Name, r.Err)
		}
	}
	if attacks < 5 {
		t.Errorf("%d attack scenarios ran, want 5:\n%s", attacks, out.String())
	}
	// Without Confidential the group is not part of the suite.
	for _, s := range conformance.Scenarios(conformance.Config{}) {
		if strings.HasPrefix(s.Name, "attack/") {
			t.Errorf("%s runs against a non-confidential agent", s.Name)
		}
	}
}
