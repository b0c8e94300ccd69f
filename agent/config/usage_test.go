package config

import (
	"strings"
	"testing"
)

// --help names every flag with what it does, and every configuration key
// with its spellings on the kernel command line and in the environment and
// who may set it in confidential mode, so an operator needs no source.
func TestHelpDescribesEveryFlagAndKey(t *testing.T) {
	_, err := Load(Sources{Args: []string{"--help"}})
	if err == nil {
		t.Fatal("--help: no usage")
	}
	help := err.Error()
	for _, want := range []string{
		"--config FILE", "--addr ADDR", "--log-level LEVEL", "--policy-file FILE",
		"--decision-log FILE", "--initdata DEVICE", "--confidential",
		ImageFile, "refuse permissive fallbacks",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	lines := strings.Split(help, "\n")
	for _, r := range trustRules {
		var line string
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == r.key {
				line = l
			}
		}
		if line == "" {
			t.Errorf("help has no line for key %s", r.key)
			continue
		}
		for _, s := range append(append([]string{}, r.cmdline...), r.env) {
			if s != "" && !strings.Contains(line, s) {
				t.Errorf("key %s: line %q lacks %s", r.key, line, s)
			}
		}
		if want := trustHelp[r.trust]; want == "" || !strings.Contains(line, want) {
			t.Errorf("key %s: line %q lacks %q", r.key, line, want)
		}
	}
}
