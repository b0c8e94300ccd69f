// Package decisionlog keeps the tamper-evident record of policy decisions:
// one JSON object per line, each carrying the hash of the line before it, so
// that changing, inserting or removing any entry breaks the chain. The log is
// bounded: when a file would grow past its limit it is rotated, and the new
// file's first entry continues the same chain, so a set of rotated files
// verifies as one sequence.
//
// A write that fails (the file system is full) is undone: the file is cut
// back to its last complete entry and the caller gets the error, so the
// chain never carries a torn line. A torn line found at start (the writer
// died mid-write) is cut off too, and a recover entry that continues the
// chain records how many bytes were dropped. An entry that was not written
// completely was never acknowledged, so dropping it loses nothing recorded.
//
// Appends that arrive while a write is in progress are written together, in
// one write, by whichever of them comes first (group commit): each Append
// still returns only once its own line is in the file, or with the error
// that kept it out. The log promises what it always did: an entry whose
// Append returned nil has been written to the file (write(2) returned);
// there is no fsync, since the agent keeps the log on a tmpfs that does not
// outlive the VM, and a crash of the agent loses nothing written.
package decisionlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Genesis is the "previous hash" of the very first entry of a log.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Entry kinds.
const (
	KindDecision = "decision" // a request was evaluated
	KindCommit   = "commit"   // the state change of an allowed decision was kept or dropped
	KindPolicy   = "policy"   // a policy was installed
	KindRotate   = "rotate"   // first entry of a file that continues a rotated one
	KindReset    = "reset"    // the previous file's tail was unreadable; a new chain starts
	KindRecover  = "recover"  // a torn entry at the end of the file was cut off at start
)

// Entry is one line of the log. Hash is computed over the line without it.
type Entry struct {
	Seq          uint64          `json:"seq"`
	Time         string          `json:"time"`
	Kind         string          `json:"kind"`
	Request      string          `json:"request,omitempty"`
	InputSHA256  string          `json:"input_sha256,omitempty"`
	Allowed      *bool           `json:"allowed,omitempty"`
	Ops          json.RawMessage `json:"ops,omitempty"`
	Committed    *bool           `json:"committed,omitempty"`
	PolicySHA256 string          `json:"policy_sha256,omitempty"`
	Source       string          `json:"source,omitempty"`
	Message      string          `json:"message,omitempty"`
	Summary      *Summary        `json:"summary,omitempty"`
	Prev         string          `json:"prev"`
	Hash         string          `json:"hash,omitempty"`
}

// Options bound the log.
type Options struct {
	// MaxBytes is the size at which the file is rotated (default 8 MiB).
	MaxBytes int64
	// Keep is how many rotated files are kept besides the live one (default 3).
	Keep int
	// Now returns the time written into entries (default time.Now).
	Now func() time.Time
	// Strict refuses to open a log whose last complete entry is damaged
	// (confidential mode) instead of setting it aside and starting a new,
	// marked chain.
	Strict bool
	// OnRotate, when set, is called with the chain head before the live file
	// is rotated out; the agent measures it so that dropping rotated files
	// cannot hide history. When it fails nothing rotates and the append that
	// needed the rotation fails with its error.
	OnRotate func(head string) error
}

// Log appends entries to a file. It is safe for concurrent use.
type Log struct {
	path string
	opts Options

	queue queue // appends waiting for the writer (batch.go)

	// mu guards the file and the chain; the writer holds it while it
	// seals and writes a batch.
	mu   sync.Mutex
	f    file
	size int64  // bytes of complete entries in the live file
	seq  uint64 // sequence number of the next entry written
	last string // hash of the last entry written
	// torn is set when a write failed part-way and cutting the file back
	// failed too; the next append cuts it before writing.
	torn bool
	// buf holds the lines sealed but not yet written, lines where each
	// ends; they continue the chain from seq and last.
	buf   []byte
	lines []sealed
}

// file is what the log needs of its *os.File.
type file interface {
	io.Writer
	Truncate(size int64) error
	Close() error
}

// sealed is one line of the batch being written.
type sealed struct {
	end  int    // offset in buf just after the line
	hash string // the line's hash
	w    *waiter
}

// Open opens or creates the log at path and continues its chain.
func Open(path string, o Options) (*Log, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 8 << 20
	}
	if o.Keep <= 0 {
		o.Keep = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("decision log: %w", err)
	}
	l := &Log{path: path, opts: o, last: Genesis}
	l.queue.init()
	if err := l.resume(); err != nil {
		l.Close()
		return nil, fmt.Errorf("decision log %s: %w", path, err)
	}
	return l, nil
}

func (l *Log) openFile(size int64) error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("decision log: %w", err)
	}
	l.f, l.size = f, size
	return nil
}

// Append writes e (its Seq, Time, Prev and Hash are filled in) and returns
// the hash of the new entry once the entry is in the file.
func (l *Log) Append(e Entry) (string, error) {
	return l.queue.append(l, &e)
}

// Head is the hash of the last entry written ("" before the first). The
// chain makes it a commitment to every entry before it.
func (l *Log) Head() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// writeBatch seals the entries of a batch in order and writes them; each
// waiter gets its hash or the error that kept its line out of the file.
func (l *Log) writeBatch(batch []*waiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			// OnRotate panicked: nothing sealed after the file's end is
			// written, so the chain stays where the file ends.
			clear(l.lines)
			l.buf, l.lines = l.buf[:0], l.lines[:0]
			panic(r)
		}
	}()
	// One time for the batch: its entries are written at the same moment,
	// and reading the clock per line would be a tenth of a line's cost.
	now := l.opts.Now()
	for _, w := range batch {
		if err := l.add(&w.e, w, now); err != nil {
			w.err = err
		}
	}
	_ = l.flush() // the waiters have the error
}

// writeNow writes one entry by itself (at open, before any Append).
func (l *Log) writeNow(e Entry) error {
	if err := l.add(&e, nil, l.opts.Now()); err != nil {
		return err
	}
	return l.flush()
}

// tip is where the chain stands after the lines not yet written: the
// sequence number of the next entry and the hash it follows.
func (l *Log) tip() (uint64, string) {
	if n := len(l.lines); n > 0 {
		return l.seq + uint64(n), l.lines[n-1].hash
	}
	return l.seq, l.last
}

// add seals e onto the batch for w (nil for entries nobody waits for),
// rotating first when its line would take the live file past MaxBytes.
// An error means e's line is not in the batch.
func (l *Log) add(e *Entry, w *waiter, now time.Time) error {
	if l.f == nil {
		return errors.New("decision log is closed")
	}
	if err := l.cutTorn(); err != nil {
		return err
	}
	// A live file that continues a chain starts with its rotation mark,
	// also when writing the mark failed the first time.
	if _, prev := l.tip(); l.size+int64(len(l.buf)) == 0 && prev != Genesis {
		if err := l.push(rotateMark(l.path), nil, now); err != nil {
			return err
		}
	}
	start := len(l.buf)
	if err := l.push(*e, w, now); err != nil {
		return err
	}
	if filled := l.size + int64(start); filled > 0 && filled+int64(len(l.buf)-start) > l.opts.MaxBytes {
		l.lines[len(l.lines)-1] = sealed{}
		l.buf, l.lines = l.buf[:start], l.lines[:len(l.lines)-1]
		if err := l.flush(); err != nil {
			return err
		}
		if err := l.rotate(); err != nil {
			return err
		}
		if err := l.push(rotateMark(l.path), nil, now); err != nil {
			return err
		}
		return l.push(*e, w, now)
	}
	return nil
}

// push seals e onto the end of the batch, written at now.
func (l *Log) push(e Entry, w *waiter, now time.Time) error {
	seq, prev := l.tip()
	buf, hash, err := appendSealed(l.buf, &e, seq, now, prev)
	l.buf = buf
	if err != nil {
		return err
	}
	l.lines = append(l.lines, sealed{end: len(buf), hash: hash, w: w})
	return nil
}

func rotateMark(path string) Entry {
	return Entry{Kind: KindRotate, Message: "continues " + filepath.Base(path) + ".1"}
}

// maxKeptBuf is the batch buffer kept between batches; a larger one
// (a burst of appends) is dropped so an idle agent does not hold it.
const maxKeptBuf = 64 << 10

// flush writes the batch in one write and advances the chain over it.
// When the write fails part-way, the lines that reached the file whole
// are kept (their waiters succeed) and the file is cut back to the last
// of them: every later line's waiter gets the error.
func (l *Log) flush() error {
	if len(l.lines) == 0 {
		return nil
	}
	n, err := l.f.Write(l.buf)
	kept := len(l.lines)
	if err != nil {
		kept = 0
		for kept < len(l.lines) && l.lines[kept].end <= n {
			kept++
		}
	}
	for _, s := range l.lines[:kept] {
		if s.w != nil {
			s.w.hash = s.hash
		}
	}
	if kept > 0 {
		l.size += int64(l.lines[kept-1].end)
		l.seq += uint64(kept)
		l.last = l.lines[kept-1].hash
	}
	if err != nil {
		err = fmt.Errorf("decision log: %w", err)
		l.torn = true
		if cerr := l.cutTorn(); cerr != nil {
			err = fmt.Errorf("%w (and %v)", err, cerr)
		}
		for _, s := range l.lines[kept:] {
			if s.w != nil {
				s.w.err = err
			}
		}
	}
	clear(l.lines)
	l.lines = l.lines[:0]
	l.buf = l.buf[:0]
	if cap(l.buf) > maxKeptBuf {
		l.buf, l.lines = nil, nil
	}
	return err
}

// cutTorn truncates the live file to its complete entries after a failed
// write. Shrinking a file needs no space, so it succeeds on a full file
// system; if it ever fails, appends keep failing until it succeeds.
func (l *Log) cutTorn() error {
	if !l.torn {
		return nil
	}
	if err := l.f.Truncate(l.size); err != nil {
		return fmt.Errorf("decision log: cutting a torn entry: %w", err)
	}
	l.torn = false
	return nil
}

// rotate hands the head to OnRotate, then moves the live file to path.1
// (older ones shift up, the oldest beyond Keep is dropped) and opens a new,
// empty live file; the caller writes its rotation mark. The batch must
// be empty (flushed).
func (l *Log) rotate() error {
	if l.opts.OnRotate != nil {
		if err := l.opts.OnRotate(l.last); err != nil {
			return fmt.Errorf("decision log: not rotated, head not recorded: %w", err)
		}
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("decision log: %w", err)
	}
	l.f = nil
	if err := l.shift(); err != nil {
		// Keep logging into the old file rather than not at all.
		if oerr := l.openFile(l.size); oerr != nil {
			return errors.Join(err, oerr)
		}
		return err
	}
	return l.openFile(0)
}

func (l *Log) shift() error {
	for i := l.opts.Keep; i >= 1; i-- {
		from := l.path
		if i > 1 {
			from = l.path + "." + strconv.Itoa(i-1)
		}
		if err := os.Rename(from, l.path+"."+strconv.Itoa(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("decision log rotate: %w", err)
		}
	}
	return nil
}

// Close closes the file. Appends after it fail.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
