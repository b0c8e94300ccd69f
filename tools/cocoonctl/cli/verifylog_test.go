package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

// verify-log says when the files do not hold the whole history: a file
// that ends mid-entry, or a first entry whose predecessor file is gone.
func TestVerifyLogReportsTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	l, err := decisionlog.Open(path, decisionlog.Options{MaxBytes: 1024, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "ExecProcessRequest"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// Keep 1: the oldest files are gone; .1 and the live file remain.
	out, e, code := runCtl(t, "policy", "verify-log", path+".1", path)
	if code == 0 || !strings.Contains(e, "truncated") || !strings.Contains(e, "history before seq") {
		t.Fatalf("missing predecessor: %d %q %q", code, out, e)
	}
	out, e, code = runCtl(t, "policy", "verify-log", "--partial", path+".1", path)
	if code != 0 || !strings.Contains(out, "history before seq") || !strings.Contains(out, "ok (partial)") {
		t.Fatalf("--partial: %d %q %q", code, out, e)
	}
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-5], 0o600)
	_, e, code = runCtl(t, "policy", "verify-log", "--partial", path)
	if code == 0 || !strings.Contains(e, "ends in the middle of entry") {
		t.Fatalf("mid-entry end: %d %q", code, e)
	}
}
