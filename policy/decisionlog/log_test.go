package decisionlog_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

func yes() *bool { b := true; return &b }

func fill(t *testing.T, l *decisionlog.Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "CreateContainerRequest",
			InputSHA256: strings.Repeat("a", 64), Allowed: yes(), Ops: []byte(`[{"op":"add","path":"/pstate/x","value":1}]`)}); err != nil {
			t.Fatal(err)
		}
	}
}

func sources(t *testing.T, paths ...string) []decisionlog.Source {
	var out []decisionlog.Source
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, decisionlog.Source{Name: p, R: bytes.NewReader(b)})
	}
	return out
}

func TestChainAcrossRotationAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	l, err := decisionlog.Open(path, decisionlog.Options{MaxBytes: 4096, Keep: 10})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 20)
	l.Close()
	// Reopening continues the chain.
	l, err = decisionlog.Open(path, decisionlog.Options{MaxBytes: 4096, Keep: 10})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 20)
	head := l.Head()
	l.Close()
	files, _ := filepath.Glob(path + ".*")
	if len(files) < 2 {
		t.Fatalf("no rotation happened: %v", files)
	}
	var ordered []string
	for i := len(files); i >= 1; i-- {
		ordered = append(ordered, path+"."+string(rune('0'+i)))
	}
	ordered = append(ordered, path)
	res, err := decisionlog.Verify(sources(t, ordered...))
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 40+len(files) || res.Continued {
		t.Fatalf("%+v", res)
	}
	// The head the writer reports, across rotations, is what the files prove.
	if head == "" || head != res.LastHash {
		t.Fatalf("Head() = %q, files end at %q", head, res.LastHash)
	}
	// The live file alone verifies as a continuation.
	res, err = decisionlog.Verify(sources(t, path))
	if err != nil || !res.Continued {
		t.Fatalf("live file alone: %+v %v", res, err)
	}
	// Files out of order do not.
	if _, err := decisionlog.Verify(sources(t, append([]string{path}, ordered[:len(ordered)-1]...)...)); err == nil {
		t.Fatal("reordered files verified")
	}
}

// Changing any single byte of the log is detected and the error names the line.
func TestTamperAnyByte(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	l, err := decisionlog.Open(path, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 3)
	l.Close()
	orig, _ := os.ReadFile(path)
	for i := range orig {
		if orig[i] == '\n' {
			continue
		}
		b := bytes.Clone(orig)
		b[i] ^= 0x01
		_, err := decisionlog.Verify([]decisionlog.Source{{Name: "log", R: bytes.NewReader(b)}})
		line := bytes.Count(orig[:i], []byte("\n")) + 1
		if err == nil {
			t.Fatalf("byte %d flipped: verified", i)
		}
		if !strings.Contains(err.Error(), "log:"+string(rune('0'+line))+":") {
			t.Fatalf("byte %d (line %d): error %v does not name the line", i, line, err)
		}
	}
	// Dropping a middle line breaks the chain.
	lines := bytes.SplitAfter(orig, []byte("\n"))
	cut := append(bytes.Clone(lines[0]), lines[2]...)
	if _, err := decisionlog.Verify([]decisionlog.Source{{Name: "log", R: bytes.NewReader(cut)}}); err == nil {
		t.Fatal("removed entry not detected")
	}
}

func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	l, _ := decisionlog.Open(filepath.Join(dir, "d.log"), decisionlog.Options{})
	l.Append(decisionlog.Entry{Kind: decisionlog.KindPolicy, PolicySHA256: "x"})
	l.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "d.log"))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		decisionlog.Verify([]decisionlog.Source{{Name: "f", R: bytes.NewReader(b)}})
	})
}

// A decision's summary is part of its hashed line: it reads back as
// written, and editing it breaks the chain. Entries without one (every
// entry written before summaries existed) verify as before.
func TestSummaryCoveredByChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	l, err := decisionlog.Open(path, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sum := &decisionlog.Summary{ContainerID: "app", ContainerType: "container", Image: "registry.example/app:v1",
		Args: []string{"sh", "-c", "echo hi"}}
	fill(t, l, 1)
	if _, err := l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "CreateContainerRequest", Allowed: yes(), Summary: sum}); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 1)
	l.Close()
	orig, _ := os.ReadFile(path)
	if _, err := decisionlog.Verify(sources(t, path)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(orig), "\n")
	if strings.Contains(lines[0], "summary") || !strings.Contains(lines[1], `"summary":{"container_id":"app","container_type":"container","image":"registry.example/app:v1","args":["sh","-c","echo hi"]}`) {
		t.Fatalf("lines:\n%s", orig)
	}
	for name, edit := range map[string][2]string{
		"image":     {"app:v1", "app:v2"},
		"argument":  {`"echo hi"`, `"echo HI"`},
		"dropped":   {`,"summary":{"container_id":"app","container_type":"container","image":"registry.example/app:v1","args":["sh","-c","echo hi"]}`, ""},
		"truncated": {`"echo hi"]`, `"echo hi"],"truncated":true`},
	} {
		b := strings.Replace(string(orig), edit[0], edit[1], 1)
		_, err := decisionlog.Verify([]decisionlog.Source{{Name: "log", R: strings.NewReader(b)}})
		if err == nil || !strings.Contains(err.Error(), "log:2: entry hash does not match") {
			t.Errorf("summary %s edited: %v", name, err)
		}
	}
}
