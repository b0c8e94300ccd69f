package decisionlog_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

// A stream decision's line costs one allocation: the hash it returns.
// Encoding, hashing and waiting for the write allocate nothing.
func TestAppendAllocations(t *testing.T) {
	l, err := decisionlog.Open(filepath.Join(t.TempDir(), "decisions.log"), decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e := streamDecision()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("Append allocates %.1f times per entry, want at most 1", allocs)
	}
}

// readEntries reads and verifies the files of a log, oldest first.
func readEntries(t *testing.T, paths ...string) ([]decisionlog.Entry, decisionlog.Result) {
	t.Helper()
	res, err := decisionlog.Verify(sources(t, paths...))
	if err != nil {
		t.Fatalf("chain does not verify: %v", err)
	}
	var out []decisionlog.Entry
	for _, p := range paths {
		out = append(out, entriesOf(t, p)...)
	}
	return out, res
}

// Concurrent appends, across many rotations, leave one chain that the
// verifier accepts; every hash an Append returned is in it, each
// goroutine's entries in the order it appended them; the head handed to
// OnRotate is the last hash of the file rotated out.
func TestConcurrentAppendsChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	var heads []string // only the writer calls OnRotate, one call at a time
	l, err := decisionlog.Open(path, decisionlog.Options{MaxBytes: 4096, Keep: 1000,
		OnRotate: func(h string) error { heads = append(heads, h); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 150
	hashes := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				h, err := l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "ReadStreamRequest",
					Message: fmt.Sprintf("w%d-%d", w, i), Allowed: yes()})
				if err != nil {
					t.Error(err)
					return
				}
				hashes[w] = append(hashes[w], h)
			}
		}()
	}
	wg.Wait()
	head := l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rotated, _ := filepath.Glob(path + ".*")
	if len(rotated) < 10 || len(heads) != len(rotated) {
		t.Fatalf("%d rotated files, %d heads reported", len(rotated), len(heads))
	}
	var paths []string
	for i := len(rotated); i >= 1; i-- {
		p := path + "." + strconv.Itoa(i)
		paths = append(paths, p)
		res, err := decisionlog.Verify(sources(t, p))
		if err != nil {
			t.Fatal(err)
		}
		if want := heads[len(rotated)-i]; res.LastHash != want {
			t.Fatalf("%s ends at %s, OnRotate was told %s", p, res.LastHash, want)
		}
	}
	paths = append(paths, path)
	entries, res := readEntries(t, paths...)
	if res.Continued || res.Entries != workers*each+len(rotated) || res.LastHash != head {
		t.Fatalf("%+v, head %s", res, head)
	}
	at := map[string]int{}
	for i, e := range entries {
		at[e.Hash] = i
	}
	for w := range workers {
		prev := -1
		for i, h := range hashes[w] {
			n, ok := at[h]
			if !ok || n <= prev || entries[n].Message != fmt.Sprintf("w%d-%d", w, i) {
				t.Fatalf("worker %d entry %d: hash %s at %d (ok %v) after %d", w, i, h, n, ok, prev)
			}
			prev = n
		}
	}
}

// When the file system fills up under concurrent appends, exactly the
// appends that returned nil have their line in the file, with the hash
// they returned, and the chain still verifies.
func TestConcurrentAppendsOnFullFileSystem(t *testing.T) {
	dir := testenv.SmallTmpfs(t, "64k")
	path := filepath.Join(dir, "decisions.log")
	l, err := decisionlog.Open(path, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const workers, each = 8, 60 // ~480 lines of ~190 bytes: more than 64k holds
	var mu sync.Mutex
	okHash := map[string]string{}
	failed := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := fmt.Sprintf("w%d-%d", w, i)
				h, err := l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "ReadStreamRequest", Message: msg})
				mu.Lock()
				if err == nil {
					okHash[msg] = h
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed == 0 || len(okHash) == 0 {
		t.Fatalf("%d appends failed, %d succeeded: the file system did not fill up part-way", failed, len(okHash))
	}
	entries, res := readEntries(t, path)
	if res.Entries != len(okHash) || res.LastHash != l.Head() {
		t.Fatalf("file holds %d entries ending at %s; %d appends succeeded, head %s", res.Entries, res.LastHash, len(okHash), l.Head())
	}
	for _, e := range entries {
		if h, ok := okHash[e.Message]; !ok || h != e.Hash {
			t.Fatalf("entry %q (hash %s) in the file, its Append returned %q", e.Message, e.Hash, h)
		}
	}
}

// entriesOf decodes the lines of a log file.
func entriesOf(t *testing.T, path string) []decisionlog.Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []decisionlog.Entry
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e decisionlog.Entry
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, e)
	}
	return out
}
