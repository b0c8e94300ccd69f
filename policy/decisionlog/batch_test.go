package decisionlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// heldFile counts the writes to the log's real file and holds the first
// one until released, so that appends queue up behind it.
type heldFile struct {
	file
	writes  atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (h *heldFile) Write(b []byte) (int, error) {
	if h.writes.Add(1) == 1 {
		close(h.entered)
		<-h.release
	}
	return h.file.Write(b)
}

// waitQueued returns once n appends wait in the queue. It yields rather
// than sleeps: the appends are already running and need only be scheduled.
func waitQueued(l *Log, n int) {
	for {
		l.queue.mu.Lock()
		got := len(l.queue.waiting)
		l.queue.mu.Unlock()
		if got == n {
			return
		}
		runtime.Gosched()
	}
}

func verifyFile(t *testing.T, path string) Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify([]Source{{Name: path, R: bytes.NewReader(b)}})
	if err != nil {
		t.Fatalf("chain does not verify: %v", err)
	}
	return res
}

// Appends that arrive while a line is being written are written
// together, in one write, and each returns its own hash.
func TestConcurrentAppendsShareOneWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := &heldFile{file: l.f, entered: make(chan struct{}), release: make(chan struct{})}
	l.f = h
	const queued = 8
	type result struct {
		msg, hash string
		err       error
	}
	results := make(chan result, queued+1)
	appendMsg := func(msg string) {
		hash, err := l.Append(Entry{Kind: KindDecision, Request: "ReadStreamRequest", Message: msg})
		results <- result{msg, hash, err}
	}
	go appendMsg("first")
	<-h.entered
	for i := range queued {
		go appendMsg(fmt.Sprint("queued-", i))
	}
	waitQueued(l, queued)
	close(h.release)
	got := map[string]string{}
	for range queued + 1 {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		got[r.msg] = r.hash
	}
	if n := h.writes.Load(); n != 2 {
		t.Fatalf("%d appends took %d writes, want 2 (one, then the %d queued behind it)", queued+1, n, queued)
	}
	res := verifyFile(t, path)
	if res.Entries != queued+1 {
		t.Fatalf("%d entries", res.Entries)
	}
	b, _ := os.ReadFile(path)
	for msg, hash := range got {
		if !bytes.Contains(b, []byte(`"message":"`+msg+`","prev":"`)) || !bytes.Contains(b, []byte(`"hash":"`+hash+`"`)) {
			t.Fatalf("%s: its hash %s is not in the file", msg, hash)
		}
	}
}

// A batch whose write runs out of space part-way keeps the lines that
// reached the file whole, and fails exactly the appends after them: the
// one whose line was cut and the ones behind it. The chain continues from
// the last kept line once there is space again.
func TestFailedWriteFailsOnlyUnwrittenLines(t *testing.T) {
	dir := testenv.SmallTmpfs(t, "64k")
	path := filepath.Join(dir, "decisions.log")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // fixed, so line lengths are known
	l, err := Open(path, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	small := func(msg string) Entry { return Entry{Kind: KindDecision, Request: "ReadStreamRequest", Message: msg} }
	// Leave 2000 bytes free in the file's last page: what the file can
	// still take once the file system is full.
	if _, err := l.Append(small("a")); err != nil {
		t.Fatal(err)
	}
	lineLen := l.size - 1 // a line's length without its message's characters
	pad := ((4096-2000-l.size-lineLen)%4096 + 4096) % 4096
	if pad == 0 {
		pad = 4096
	}
	if _, err := l.Append(small(strings.Repeat("p", int(pad)))); err != nil {
		t.Fatal(err)
	}
	if free := 4096 - l.size%4096; free != 2000 {
		t.Fatalf("set-up: %d bytes free in the last page, want 2000", free)
	}
	filler := testenv.FillUp(t, dir)
	head := l.Head()

	batch := []*waiter{
		{e: small("kept-1")}, {e: small("kept-2")},
		{e: small(strings.Repeat("x", 4000))}, // cut part-way: ENOSPC
		{e: small("behind")},
	}
	l.writeBatch(batch)
	for i, w := range batch[:2] {
		if w.err != nil || w.hash == "" {
			t.Fatalf("line %d reached the file, its append got %q, %v", i, w.hash, w.err)
		}
	}
	for i, w := range batch[2:] {
		if !errors.Is(w.err, unix.ENOSPC) || w.hash != "" {
			t.Fatalf("line %d was not written, its append got %q, %v", i+2, w.hash, w.err)
		}
	}
	res := verifyFile(t, path)
	if res.Entries != 4 || res.LastHash != batch[1].hash || l.Head() != batch[1].hash || head == batch[1].hash {
		t.Fatalf("%+v, head %s, want the file to end at the second kept line %s", res, l.Head(), batch[1].hash)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(small("after")); err != nil {
		t.Fatal(err)
	}
	if res := verifyFile(t, path); res.Entries != 5 {
		t.Fatalf("%+v", res)
	}
}

// A panic while a batch is written (OnRotate is the agent's measurer)
// reaches the append that was writing, as it did before batching; the
// batch's lines count as not written and later appends are not stuck
// behind it.
func TestPanicWhileWritingDoesNotStick(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	rotations := 0
	l, err := Open(path, Options{MaxBytes: 1024, OnRotate: func(string) error {
		rotations++
		if rotations == 1 {
			panic("measurer broke")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendOrPanic := func() (panicked bool, err error) {
		defer func() { panicked = recover() != nil }()
		_, err = l.Append(Entry{Kind: KindDecision, Request: "ReadStreamRequest"})
		return false, err
	}
	for i := 0; rotations == 0; i++ {
		panicked, err := appendOrPanic()
		if rotations == 0 && (panicked || err != nil) {
			t.Fatalf("append %d: panicked %v, %v", i, panicked, err)
		}
		if rotations == 1 && !panicked {
			t.Fatalf("the panic in OnRotate did not reach the append: %v", err)
		}
	}
	head := l.Head()
	if panicked, err := appendOrPanic(); panicked || err != nil {
		t.Fatalf("append after the panic: panicked %v, %v", panicked, err)
	}
	res := verifyFile(t, path)
	if res.Entries != 2 || l.Head() == head || res.LastHash != l.Head() {
		t.Fatalf("%+v after rotating", res)
	}
}
