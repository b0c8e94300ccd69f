package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// consoleRefused is a confidential agent's one line about the debug console
// (docs/operations.md, "The debug console").
const consoleRefused = "debug console refused: a confidential agent never serves a shell, whatever the image file or the kernel command line asks"

// TestConfidentialWithoutInitdata boots the guest tree as a confidential
// image (its own /etc/cocoon/agent.toml says confidential = true, as
// CONFIDENTIAL=1 builds it) without an initdata disk, while the host's
// kernel command line tries to talk the agent out of it. The agent must
// ignore those parameters, name them in one warning, refuse to serve and
// power the VM off. The image file also asks for the debug console, as a
// mis-built image might: the agent refuses it with one line. (Whether
// anything answers on its port cannot be probed: the agent powers off
// within a second, and this boot has no network; agent/internal/debugconsole shows
// that a refusal binds nothing.)
//
// TCG has no TEE, so the refusal reachable here is "confidential mode needs a
// TEE": without one the initdata register cannot be read, and the check
// for withheld initdata (register set, no disk) runs only after it. That
// check is covered on fake SEV-SNP and TDX devices in agent/internal/attest/setup.
func TestConfidentialWithoutInitdata(t *testing.T) {
	a := artifacts(t)
	initrd := filepath.Join(t.TempDir(), "confidential-initrd.img")
	err := OverlayInitrd(context.Background(), initrd, a.FullInitrd, map[string]string{
		ImageConfigFile: "confidential = true\ndebug_console = true\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	hostKeys := []string{"agent.attest_sample", "agent.confidential", "agent.config_file", "agent.policy_file"}
	v := boot(t, VMConfig{Initrd: initrd, NoNet: true, Extra: []string{
		"agent.confidential=false", "agent.attest_sample", "agent.config_file=/nonexistent.toml",
		"agent.policy_file=/etc/kata-opa/allow-all.rego",
		// Host-settable, so not named in the warning; the console is
		// refused before any port matters.
		"agent.debug_console_vport=1026",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), bootBound)
	defer cancel()
	if err := v.Wait(ctx); err != nil {
		t.Fatalf("a confidential agent without a TEE kept the VM running: %v", err)
	}
	con := v.Console()

	if rec, ok := con.Find("configuration loaded"); !ok || rec["confidential"] != true || rec.Str("file") != "/etc/cocoon/agent.toml" {
		t.Errorf("configuration record %v (found %v): want confidential from /etc/cocoon/agent.toml", rec, ok)
	}
	var warnings int
	for _, r := range con.Agent {
		if !strings.HasPrefix(r.Msg(), "confidential mode: ignoring host settings") {
			continue
		}
		warnings++
		var keys []string
		list, _ := r["keys"].([]any)
		for _, k := range list {
			s, _ := k.(string)
			keys = append(keys, s)
		}
		if !slices.Equal(keys, hostKeys) {
			t.Errorf("warning names %v, want %v", keys, hostKeys)
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings about ignored host settings, want exactly one", warnings)
	}
	// The console is refused before initdata and attestation, so its line
	// is there although the agent then refuses to start.
	var refusals int
	for _, r := range con.Agent {
		if strings.HasPrefix(r.Msg(), "debug console") {
			if r.Msg() != consoleRefused || r.Str("level") != "WARN" {
				t.Errorf("debug console record %v, want only the refusal", r)
			}
			refusals++
		}
	}
	if refusals != 1 {
		t.Errorf("%d debug console records, want exactly the one refusal", refusals)
	}
	rec, ok := con.Find("agent failed")
	if !ok || !strings.Contains(rec.Str("error"), "confidential mode needs a TEE") {
		t.Errorf("refusal record %v (found %v), want it to say confidential mode needs a TEE", rec, ok)
	}
	if _, ok := con.Find("agent serving"); ok {
		t.Error("a confidential agent served without a TEE")
	}
	// As init the agent powers off; exiting would panic the kernel.
	if len(con.Grep("reboot: Power down")) == 0 {
		t.Error("the VM stopped without powering off")
	}
	if p := con.Grep("Kernel panic"); len(p) > 0 {
		t.Errorf("kernel panic: %v", p)
	}
}
