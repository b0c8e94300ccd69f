package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

func runCtl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestInitdataCommands(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.rego")
	os.WriteFile(pol, []byte("package agent_policy\ndefault ExecProcessRequest := false\n"), 0o600)
	toml := filepath.Join(dir, "initdata.toml")
	_, stderr, code := runCtl(t, "initdata", "create", "--algorithm", "sha384", "--policy", pol, "--file", "aa.toml="+pol, "-o", toml)
	if code != 0 {
		t.Fatal(stderr)
	}
	digest, _, code := runCtl(t, "initdata", "digest", toml)
	if code != 0 || strings.TrimSpace(digest) != strings.TrimSpace(stderr) || !strings.HasPrefix(digest, "sha384:") {
		t.Fatalf("digest %q vs create %q", digest, stderr)
	}
	img := filepath.Join(dir, "initdata.img")
	if _, e, code := runCtl(t, "initdata", "image", toml, "-o", img); code != 0 {
		t.Fatal(e)
	}
	d, err := initdata.Load(img)
	if err != nil || "sha384:"+d.DigestHex() != strings.TrimSpace(digest) {
		t.Fatalf("image: %v", err)
	}
	ann, _, code := runCtl(t, "initdata", "annotation", toml)
	if fromAnn, err := initdata.ParseAnnotation(ann); code != 0 || err != nil || fromAnn.DigestHex() != d.DigestHex() {
		t.Fatalf("annotation: %v", err)
	}
	os.WriteFile(toml, []byte("version = \"0.1.0\"\nalgorithm = \"md5\"\n"), 0o600)
	if _, e, code := runCtl(t, "initdata", "digest", toml); code == 0 || !strings.Contains(e, "md5") {
		t.Fatalf("bad algorithm accepted: %s", e)
	}
}

func TestPolicyEvalAndVerifyLog(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "exec.json")
	os.WriteFile(in, []byte(`{"container_id":"c","process":{"Args":["/bin/sh"]}}`), 0o600)
	out, e, code := runCtl(t, "policy", "eval", "--policy", "builtin:allow-all-except-exec", "--kind", "ExecProcess", "--input", in)
	if code != 1 || !strings.Contains(out, `"allowed": false`) {
		t.Fatalf("eval: %d %s %s", code, out, e)
	}
	if out, e, code = runCtl(t, "policy", "eval", "--policy", "builtin:allow-all", "--kind", "ExecProcessRequest", "--input", in); code != 0 {
		t.Fatalf("eval: %d %s %s", code, out, e)
	}
	if _, e, code = runCtl(t, "policy", "eval", "--policy", "builtin:nope", "--kind", "ExecProcess", "--input", in); code == 0 {
		t.Fatal("unknown builtin accepted")
	}

	logPath := filepath.Join(dir, "d.log")
	l, err := decisionlog.Open(logPath, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "ExecProcessRequest"})
	}
	l.Close()
	if out, e, code := runCtl(t, "policy", "verify-log", logPath); code != 0 || !strings.HasPrefix(out, "ok: 3 entries") {
		t.Fatalf("verify: %s %s", out, e)
	}
	b, _ := os.ReadFile(logPath)
	b[bytes.IndexByte(b, '\n')+20] ^= 1
	os.WriteFile(logPath, b, 0o600)
	if _, e, code := runCtl(t, "policy", "verify-log", logPath); code == 0 || !strings.Contains(e, logPath+":2:") {
		t.Fatalf("tampered log: %s", e)
	}
}
