package cli

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/policy/explain"
)

var update = flag.Bool("update", false, "rewrite golden files")

const genpolicyStyle = "../../../policy/explain/testdata/genpolicy-style.rego"

// appJSON is a protojson CreateContainerRequest the genpolicy-style test
// policy allows; explainCases alter it.
const appJSON = `{"container_id":"app1","OCI":{"Version":"1.1.0",
 "Annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"app",
  "io.kubernetes.cri.image-name":"docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
  "io.kubernetes.cri.sandbox-name":"web-1"},
 "Process":{"Args":["/bin/echo","hello"],"Env":["PATH=/usr/local/bin:/usr/bin:/bin","POD_NAME=web-1"],"Cwd":"/","User":{"UID":1000,"GID":1000}},
 "Mounts":[{"destination":"/etc/hosts","type":"bind","source":"/run/kata-containers/shared/containers/abc123-0f0f-hosts","options":["rbind","ro"]}]}}`

var explainCases = []struct {
	name, policy, kind, request string
}{
	{"allowed", genpolicyStyle, "CreateContainer", appJSON},
	{"args", genpolicyStyle, "CreateContainer", strings.Replace(appJSON, `"hello"`, `"sh"`, 1)},
	{"env", genpolicyStyle, "CreateContainerRequest", strings.Replace(appJSON, `"POD_NAME=web-1"`, `"POD_NAME=web-1","EVIL=1"`, 1)},
	{"image", genpolicyStyle, "CreateContainer", strings.Replace(appJSON, `busybox@sha256:0123`, `busybox@sha256:9123`, 1)},
	{"mount", genpolicyStyle, "CreateContainer", strings.Replace(appJSON, `"Mounts":[`, `"Mounts":[{"destination":"/host","type":"bind","source":"/"},`, 1)},
	{"kata shape", genpolicyStyle, "CreateContainer", `{"container_id":"p","sandbox_pidns":false,"string_user":null,"OCI":{"Version":"1.1.0","Hooks":null,"Annotations":{"io.kubernetes.cri.container-type":"sandbox"},"Process":{"Args":["/bin/sh"],"Env":[],"Cwd":"/","User":{"UID":65535,"GID":65535,"AdditionalGids":[]}},"Mounts":[]}}`},
	{"exec", genpolicyStyle, "ExecProcess", `{"container_id":"app1","process":{"Args":["/bin/sh"]}}`},
	{"builtin", "builtin:coco-default", "ReadStdout", `{"container_id":"app1"}`},
}

// TestPolicyExplainGolden runs `cocoonctl policy explain` over requests
// written here and compares its output with testdata/explain.golden
// (go test -run TestPolicyExplainGolden -update rewrites it).
func TestPolicyExplainGolden(t *testing.T) {
	dir := t.TempDir()
	var got strings.Builder
	for i, tc := range explainCases {
		req := filepath.Join(dir, strconv.Itoa(i)+".json")
		if err := os.WriteFile(req, []byte(tc.request), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := runCtl(t, "policy", "explain", "--policy", tc.policy, "--kind", tc.kind, "--request", req)
		if errOut != "" && code != 1 {
			t.Fatalf("%s: code %d, stderr %q", tc.name, code, errOut)
		}
		got.WriteString("# " + tc.name + " (exit " + strconv.Itoa(code) + ")\n" + out)
	}
	golden := filepath.Join("testdata", "explain.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Fatalf("output differs from %s:\n%s", golden, got.String())
	}
}

// With --log and --seq the kind comes from the decision log, and only the
// request and policy that decision recorded are explained.
func TestPolicyExplainFromDecisionLog(t *testing.T) {
	dir := t.TempDir()
	text, err := os.ReadFile(genpolicyStyle)
	if err != nil {
		t.Fatal(err)
	}
	denied := strings.Replace(appJSON, `"hello"`, `"sh"`, 1)
	req, err := explain.ParseRequest("CreateContainer", []byte(denied))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "decisions.log")
	dl, err := decisionlog.Open(logPath, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(context.Background(), string(text), "test")
	if err != nil {
		t.Fatal(err)
	}
	e := policy.NewEngine(p, dl, nil)
	if _, err := e.Gate(context.Background(), "CreateContainer", req.Message); err == nil {
		t.Fatal("request allowed")
	}
	if err := dl.Close(); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	logged, other := write("logged.json", denied), write("other.json", appJSON)
	// seq 0 is the policy entry, 1 the decision.
	out, _, code := runCtl(t, "policy", "explain", "--policy", genpolicyStyle, "--request", logged, "--log", logPath, "--seq", "1")
	if code != 1 || !strings.Contains(out, `OCI.Process.Args[1]: got "sh", policy allows "hello"`) {
		t.Fatalf("code %d, stdout %q", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--policy", genpolicyStyle, "--request", other, "--log", logPath, "--seq", "1"}, "not the one decision 1 recorded"},
		{[]string{"--policy", "builtin:allow-all", "--request", logged, "--log", logPath, "--seq", "1"}, "was made by policy"},
		{[]string{"--policy", genpolicyStyle, "--request", logged, "--log", logPath, "--seq", "0"}, `"policy" entry, not a decision`},
		{[]string{"--policy", genpolicyStyle, "--request", logged, "--log", logPath, "--seq", "9"}, "no entry with seq 9"},
		{[]string{"--policy", genpolicyStyle, "--request", logged}, "--kind (or --log and --seq) is required"},
	} {
		_, errOut, code := runCtl(t, append([]string{"policy", "explain"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: code %d, stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}
