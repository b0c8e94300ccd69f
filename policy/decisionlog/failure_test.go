package decisionlog_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

// A write that fails part-way (ENOSPC) leaves no torn line: once space is
// back the log continues and the file verifies as one chain.
func TestFullFileSystemKeepsChain(t *testing.T) {
	dir := testenv.SmallTmpfs(t, "64k")
	path := filepath.Join(dir, "decisions.log")
	l, err := decisionlog.Open(path, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fill(t, l, 3)
	// The filler takes every free page; the log's last page keeps its slack,
	// so the next entry is written in part before ENOSPC.
	if st, _ := os.Stat(path); st.Size()%4096 == 0 {
		fill(t, l, 1)
	}
	filler := testenv.FillUp(t, dir)
	head := l.Head()
	big := decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "CreateContainerRequest", Message: strings.Repeat("x", 8192)}
	if _, err := l.Append(big); err == nil {
		t.Fatal("append on a full file system succeeded")
	}
	if l.Head() != head {
		t.Fatal("a failed append moved the head")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 2)
	res, err := decisionlog.Verify(sources(t, path))
	if err != nil {
		t.Fatalf("chain broken after a failed write: %v", err)
	}
	if res.Entries != 5 && res.Entries != 6 {
		t.Fatalf("%d entries", res.Entries)
	}
}

// A torn last line found at start (a crash mid-write) is cut off and a
// recover entry continuing the same chain says what was dropped; nothing
// that was recorded is moved aside.
func TestTornTailTruncatedAndMarked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	l, err := decisionlog.Open(path, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 2)
	head := l.Head()
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":3,"ti`)
	f.Close()
	l, err = decisionlog.Open(path, decisionlog.Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 1)
	l.Close()
	if _, err := os.Stat(path + ".1"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("recorded entries were moved aside: %v", err)
	}
	res, err := decisionlog.Verify(sources(t, path))
	if err != nil {
		t.Fatal(err)
	}
	// 2 decisions, the recover mark, 1 decision; one chain from genesis.
	if res.Entries != 4 || res.Continued || len(res.Resets) != 0 {
		t.Fatalf("%+v", res)
	}
	b, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	mark := string(lines[2])
	for _, want := range []string{`"kind":"recover"`, `"prev":"` + head + `"`, "dropped 12 bytes"} {
		if !strings.Contains(mark, want) {
			t.Fatalf("recover entry %s lacks %s", mark, want)
		}
	}
	if len(res.Recovered) != 1 || !strings.Contains(res.Recovered[0], "dropped 12 bytes") {
		t.Fatalf("Verify does not report the recovery: %+v", res)
	}
}

// A last complete entry that does not verify is not a crash but damage:
// strict (confidential) logs refuse to continue; others start a new,
// marked chain and Verify reports the reset.
func TestDamagedTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	l, _ := decisionlog.Open(path, decisionlog.Options{})
	fill(t, l, 2)
	l.Close()
	b, _ := os.ReadFile(path)
	b[len(b)-10] ^= 1
	os.WriteFile(path, b, 0o600)
	if _, err := decisionlog.Open(path, decisionlog.Options{Strict: true}); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("strict open of a damaged log: %v", err)
	}
	l, err := decisionlog.Open(path, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 1)
	l.Close()
	res, err := decisionlog.Verify(sources(t, path))
	if err != nil || len(res.Resets) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
}

// Before a file is rotated out its head is handed to OnRotate (the agent
// measures it); when that fails nothing rotates and the append fails.
func TestRotationReportsHead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	var heads []string
	fail := false
	l, err := decisionlog.Open(path, decisionlog.Options{MaxBytes: 2048, OnRotate: func(h string) error {
		if fail {
			return errors.New("measurement failed")
		}
		heads = append(heads, h)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 100 && len(heads) == 0; i++ {
		fill(t, l, 1)
	}
	if len(heads) != 1 {
		t.Fatalf("rotation heads %v", heads)
	}
	res, err := decisionlog.Verify(sources(t, path+".1"))
	if err != nil || res.LastHash != heads[0] {
		t.Fatalf("reported head %s, rotated file ends at %s (%v)", heads[0], res.LastHash, err)
	}
	fail = true
	head := l.Head()
	for i := 0; i < 100; i++ {
		if _, err := l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "X"}); err != nil {
			if !strings.Contains(err.Error(), "measurement failed") {
				t.Fatalf("append error %v", err)
			}
			if _, err := os.Stat(path + ".2"); err == nil {
				t.Fatal("rotated although the head was not recorded")
			}
			if l.Head() == head {
				t.Fatal("no entry was appended before the rotation was due")
			}
			return
		}
	}
	t.Fatal("no rotation was attempted")
}

// Verify says clearly when the files are truncated: a last line cut
// mid-way, or history before the first entry that is not in the files.
func TestVerifyReportsTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	l, _ := decisionlog.Open(path, decisionlog.Options{MaxBytes: 2048})
	fill(t, l, 20)
	l.Close()
	b, _ := os.ReadFile(path)
	_, err := decisionlog.Verify([]decisionlog.Source{{Name: "live", R: bytes.NewReader(b[:len(b)-7])}})
	if err == nil || !strings.Contains(err.Error(), "live: truncated: the file ends in the middle of entry") {
		t.Fatalf("mid-line end: %v", err)
	}
	res, err := decisionlog.Verify(sources(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Continued || !strings.Contains(res.Missing, "not in the files given") || !strings.Contains(res.Missing, "decisions.log.1") {
		t.Fatalf("missing history not reported: %+v", res)
	}
	// A first entry that is not a rotation mark and does not start at
	// genesis names what is missing.
	lines := bytes.SplitAfter(b, []byte("\n"))
	_, err = decisionlog.Verify([]decisionlog.Source{{Name: "cut", R: bytes.NewReader(bytes.Join(lines[2:], nil))}})
	if err == nil || !strings.Contains(err.Error(), "truncated at its start") {
		t.Fatalf("cut start: %v", err)
	}
}

// FuzzOpen feeds arbitrary existing files to Open: it never panics, and a
// log it accepts in strict mode verifies after one more append.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	l, _ := decisionlog.Open(filepath.Join(dir, "d.log"), decisionlog.Options{})
	l.Append(decisionlog.Entry{Kind: decisionlog.KindPolicy, PolicySHA256: "x"})
	l.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "d.log"))
	f.Add(b)
	f.Add(append(bytes.Clone(b), `{"seq":1`...))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "d.log")
		os.WriteFile(path, b, 0o600)
		l, err := decisionlog.Open(path, decisionlog.Options{Strict: true})
		if err != nil {
			return
		}
		_, aerr := l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "X"})
		l.Close()
		if aerr != nil {
			t.Fatal(aerr)
		}
		got, _ := os.ReadFile(path)
		res, err := decisionlog.Verify([]decisionlog.Source{{Name: "f", R: bytes.NewReader(got)}})
		// The file's own earlier history may be a continuation or broken
		// mid-way; the part this writer added must chain to its tail.
		if err != nil && !strings.Contains(err.Error(), "truncated at its start") && !strings.Contains(err.Error(), "chain broken") && !strings.Contains(err.Error(), "sequence") {
			t.Fatalf("%v\n%q", err, got)
		}
		_ = res
	})
}
