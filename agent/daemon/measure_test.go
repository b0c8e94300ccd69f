package daemon

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

// writeLog makes a real decision log of n entries and returns its bytes and
// the hash of each entry.
func writeLog(t testing.TB, n int) ([]byte, []string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "decisions.log")
	l, err := decisionlog.Open(p, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	var hashes []string
	for range n {
		h, err := l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "CreateContainerRequest", Allowed: &yes})
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b, hashes
}

func TestDecisionLogHead(t *testing.T) {
	good, hashes := writeLog(t, 3)
	tampered := bytes.Replace(good, []byte("CreateContainerRequest"), []byte("CreateContainerRequesT"), 1)
	// An entry without its newline is still being appended: the head is
	// the last complete entry.
	for name, c := range map[string]struct {
		data []byte
		head string // "" when the log must be refused
	}{
		"complete":         {good, hashes[2]},
		"entry mid-append": {append(bytes.Clone(good), `{"seq":3,"time":"`...), hashes[2]},
		"last newline cut": {good[:len(good)-1], hashes[1]},
		"tampered":         {tampered, ""},
		"empty":            {nil, ""},
		"not a log":        {[]byte("hello\n"), ""},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "d.log")
			if err := os.WriteFile(p, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := decisionLogHead(p)
			switch {
			case c.head != "" && (err != nil || got != c.head):
				t.Fatalf("head %q, %v; want %s", got, err, c.head)
			case c.head == "" && err == nil:
				t.Fatalf("accepted a bad log, head %q", got)
			}
		})
	}
	if _, err := decisionLogHead(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing log accepted")
	}
}

// A log whose only entry is still being appended has no head.
func TestDecisionLogHeadTornSingle(t *testing.T) {
	good, _ := writeLog(t, 1)
	p := filepath.Join(t.TempDir(), "d.log")
	if err := os.WriteFile(p, good[:len(good)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if h, err := decisionLogHead(p); err == nil {
		t.Fatalf("a log with no complete entry has head %q", h)
	}
}

func FuzzDecisionLogHead(f *testing.F) {
	good, _ := writeLog(f, 2)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("\n\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "d.log")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		h, err := decisionLogHead(p)
		if err != nil {
			return
		}
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			t.Fatalf("head %q is not a sha256", h)
		}
	})
}

// BenchmarkDecisionLogHead measures verifying the live decision log at
// DestroySandbox; 20,000 entries are about 4 MiB, half the rotation size.
func BenchmarkDecisionLogHead(b *testing.B) {
	data, _ := writeLog(b, 20000)
	p := filepath.Join(b.TempDir(), "d.log")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := decisionLogHead(p); err != nil {
			b.Fatal(err)
		}
	}
}
