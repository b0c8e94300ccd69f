// Package hardware holds the tests of the TEE validation scripts: what can
// run without a TEE (syntax, lint, the environment handed to Kata's tests,
// argument checks) runs here; the scripts themselves run on TDX or SNP nodes.
package hardware

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const script = "run-coco-tests.sh"

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("bash", append([]string{script}, args...)...).CombinedOutput()
	return string(out), err
}

func TestScriptLints(t *testing.T) {
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v\n%s", err, out)
	}
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck not found: apt-get install shellcheck")
	}
	if out, err := exec.Command(sc, script).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// installShims are the shims rootfs/install.sh configures by default.
func installShims(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../../rootfs/install.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^shims="([^"]+)"$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("install.sh: no default shims line")
	}
	return strings.Fields(string(m[1]))
}

// The environment selects a shim that install.sh gives the cocoon image,
// a KBS the tests provision, and guest pull, for every TEE and runtime.
func TestPrintEnv(t *testing.T) {
	shims := installShims(t)
	for _, c := range []struct{ tee, runtime, shim string }{
		{"snp", "rs", "qemu-snp-runtime-rs"},
		{"snp", "go", "qemu-snp"},
		{"tdx", "rs", "qemu-tdx-runtime-rs"},
		{"tdx", "go", "qemu-tdx"},
	} {
		out, err := run(t, "--tee", c.tee, "--runtime", c.runtime, "--print-env")
		if err != nil {
			t.Fatalf("%s/%s: %v\n%s", c.tee, c.runtime, err, out)
		}
		env := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s/%s: line %q is not NAME=value", c.tee, c.runtime, l)
			}
			env[k] = v
		}
		if env["KATA_HYPERVISOR"] != c.shim || !slices.Contains(shims, c.shim) {
			t.Errorf("%s/%s: KATA_HYPERVISOR %q, want %q, one of install.sh's %v", c.tee, c.runtime, env["KATA_HYPERVISOR"], c.shim, shims)
		}
		for k, v := range map[string]string{"KBS": "true", "SNAPSHOTTER": "nydus", "PULL_TYPE": "guest-pull"} {
			if env[k] != v {
				t.Errorf("%s/%s: %s=%q, want %q", c.tee, c.runtime, k, env[k], v)
			}
		}
	}
}

func TestDefaultTests(t *testing.T) {
	data, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^tests="([^"]+)"$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no default tests line")
	}
	tests := strings.Fields(string(m[1]))
	for _, want := range []string{"k8s-confidential-attestation.bats", "k8s-sealed-secret.bats", "k8s-guest-pull-image.bats", "k8s-guest-pull-image-encrypted.bats"} {
		if !slices.Contains(tests, want) {
			t.Errorf("default tests %v lack %s", tests, want)
		}
	}
}

func TestRefusesBadArguments(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tee", "sgx", "--print-env"}, "--tee must be snp or tdx"},
		{[]string{"--tee", "snp", "--runtime", "java"}, "--runtime must be rs or go"},
		{[]string{"--tee", "tdx", "--kata", t.TempDir()}, "--kata must name a Kata Containers checkout"},
		{[]string{"--tee", "snp", "--bogus"}, "unknown argument --bogus"},
	} {
		out, err := run(t, c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%v: err %v, output %q, want %q", c.args, err, out, c.want)
		}
	}
}
