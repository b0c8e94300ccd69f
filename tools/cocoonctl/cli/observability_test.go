package cli

import (
	"bytes"
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

func genKeys(t *testing.T, extra ...string) string {
	dir := filepath.Join(t.TempDir(), "keys")
	if _, e, code := runCtl(t, append([]string{"keys", "generate", "--out", dir}, extra...)...); code != 0 {
		t.Fatal(e)
	}
	return dir
}

func readFile(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The generated files load with the packages' parsers, private keys are
// 0600, cocoon.toml names the same public keys, and nothing is overwritten.
func TestKeysGenerate(t *testing.T) {
	for _, p256 := range []bool{false, true} {
		var extra []string
		if p256 {
			extra = []string{"--p256"}
		}
		dir := genKeys(t, extra...)
		for _, f := range []string{sealKeyFile, execKeyFile} {
			if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v %v", f, st.Mode(), err)
			}
		}
		sealPriv, err := sealedlog.ParsePrivateKeyPEM(readFile(t, filepath.Join(dir, sealKeyFile)))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Owner struct {
				SealKey  string   `toml:"seal_key"`
				ExecKeys []string `toml:"exec_keys"`
			} `toml:"owner"`
		}
		if _, err := toml.Decode(string(readFile(t, filepath.Join(dir, ownerTOML))), &doc); err != nil {
			t.Fatal(err)
		}
		sealPub, err := sealedlog.ParsePublicKey([]byte(doc.Owner.SealKey))
		if err != nil || !sealPub.Equal(sealPriv.PublicKey()) {
			t.Fatalf("cocoon.toml seal_key: %v", err)
		}
		signer, err := execgrant.ParsePrivateKeyPEM(readFile(t, filepath.Join(dir, execKeyFile)))
		if err != nil {
			t.Fatal(err)
		}
		execPub, err := execgrant.ParsePublicKey([]byte(doc.Owner.ExecKeys[0]))
		if err != nil || !signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(execPub) {
			t.Fatalf("cocoon.toml exec_keys: %v", err)
		}
		if _, e, code := runCtl(t, "keys", "generate", "--out", dir); code == 0 || !strings.Contains(e, "exists") {
			t.Fatalf("overwrote keys: %d %q", code, e)
		}
	}
}

func TestExecGrantCommand(t *testing.T) {
	dir := genKeys(t)
	eph := genKeys(t) // an ephemeral key pair for end-to-end exec I/O
	out, e, code := runCtl(t, "exec-grant", "--key", filepath.Join(dir, execKeyFile), "--pod", "web", "-n", "shop",
		"-c", "app", "--ttl", "2m", "--seal-key", filepath.Join(eph, sealPubFile), "--", "sh", "-c", "echo hi")
	if code != 0 || !strings.Contains(e, "kubectl exec web -c app -- cocoon-exec TOKEN") {
		t.Fatalf("%d %q", code, e)
	}
	pub, err := execgrant.ParsePublicKey(readFile(t, filepath.Join(dir, execPubFile)))
	if err != nil {
		t.Fatal(err)
	}
	g, err := execgrant.Verify(strings.TrimSpace(out), []crypto.PublicKey{pub}, time.Now(), execgrant.Target{Pods: []string{"sandbox-x", "shop/web"}, Container: "app"})
	if err != nil {
		t.Fatal(err)
	}
	sk, err := g.ParseSealKey()
	if err != nil || strings.Join(g.Argv, " ") != "sh -c echo hi" || g.Expires-g.IssuedAt != 120 || sk == nil {
		t.Fatalf("grant %+v %v", g, err)
	}
	if _, err := execgrant.Verify(strings.TrimSpace(out), []crypto.PublicKey{pub}, time.Now().Add(3*time.Minute), execgrant.Target{Pods: []string{"shop/web"}, Container: "app"}); err == nil {
		t.Fatal("expired grant verified")
	}
	if _, _, code := runCtl(t, "exec-grant", "--key", filepath.Join(dir, execKeyFile), "--pod", "web", "-c", "app", "sh"); code == 0 {
		t.Fatal("a command without -- was accepted")
	}
}

// logs open recovers the bytes from kubectl-style output and marks, with
// exit status 1, a dropped and a replayed record.
func TestLogsOpen(t *testing.T) {
	dir := genKeys(t)
	priv, err := sealedlog.ParsePrivateKeyPEM(readFile(t, filepath.Join(dir, sealKeyFile)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sealedlog.NewSealer(priv.PublicKey(), "c1/stdout", sealedlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	for _, l := range []string{"first\n", "second\n", "third\n", "partial"} {
		b, _ := s.Write([]byte(l))
		sealed = append(sealed, b...)
	}
	sealed = append(sealed, s.Close()...)
	lines := strings.SplitAfter(string(sealed), "\n")
	stamp := func(ls ...string) string {
		var b strings.Builder
		for _, l := range ls {
			b.WriteString("2026-01-02T03:04:05.000000001Z " + l)
		}
		return b.String()
	}
	in := filepath.Join(t.TempDir(), "logs.txt")
	key := filepath.Join(dir, sealKeyFile)

	os.WriteFile(in, []byte(stamp(lines...)), 0o600)
	out, e, code := runCtl(t, "logs", "open", "--key", key, in)
	if code != 0 || !strings.Contains(out, "first\nsecond\nthird\npartial\n") || strings.Contains(out, "MISSING") {
		t.Fatalf("intact: %d %q %q", code, out, e)
	}

	// lines: header, records 0..3, final record 4. Drop record 1, replay record 2.
	os.WriteFile(in, []byte(stamp(lines[0], lines[1], lines[3], lines[3], lines[4], lines[5])+"host noise\n"), 0o600)
	out, e, code = runCtl(t, "logs", "open", "--key", key, in)
	if code == 0 || !strings.Contains(out, "first\n### cocoon-logs: c1/stdout#") || !strings.Contains(out, "MISSING records 1 to 1") ||
		!strings.Contains(out, "REPLAYED record 2") || strings.Contains(out, "second") || !strings.Contains(out, "1 unsealed line(s) not shown") ||
		strings.Contains(out, "host noise") || !strings.Contains(e, "2 integrity problems") {
		t.Fatalf("tampered: %d %q %q", code, out, e)
	}
	if bytes.Count([]byte(out), []byte("third")) != 1 {
		t.Fatalf("replayed record printed twice: %q", out)
	}
}
