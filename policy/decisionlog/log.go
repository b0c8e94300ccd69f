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
package decisionlog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	mu   sync.Mutex
	path string
	opts Options
	f    *os.File
	size int64 // bytes of complete entries in the live file
	seq  uint64
	last string
	// torn is set when a write failed part-way and cutting the file back
	// failed too; the next append cuts it before writing.
	torn bool
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
// the hash of the new entry.
func (l *Log) Append(e Entry) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return "", errors.New("decision log is closed")
	}
	if err := l.appendLocked(e); err != nil {
		return "", err
	}
	return l.last, nil
}

// Head is the hash of the last entry written ("" before the first). The
// chain makes it a commitment to every entry before it.
func (l *Log) Head() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

func (l *Log) appendLocked(e Entry) error {
	if err := l.cutTorn(); err != nil {
		return err
	}
	// A live file that continues a chain starts with its rotation mark,
	// also when writing the mark failed the first time.
	if l.size == 0 && l.last != Genesis {
		if err := l.writeEntry(rotateMark(l.path)); err != nil {
			return err
		}
	}
	line, hash, err := l.seal(e)
	if err != nil {
		return err
	}
	if l.size > 0 && l.size+int64(len(line)) > l.opts.MaxBytes {
		if err := l.rotate(); err != nil {
			return err
		}
		if err := l.writeEntry(rotateMark(l.path)); err != nil {
			return err
		}
		if line, hash, err = l.seal(e); err != nil {
			return err
		}
	}
	return l.write(line, hash)
}

func rotateMark(path string) Entry {
	return Entry{Kind: KindRotate, Message: "continues " + filepath.Base(path) + ".1"}
}

func (l *Log) writeEntry(e Entry) error {
	line, hash, err := l.seal(e)
	if err != nil {
		return err
	}
	return l.write(line, hash)
}

// write appends a sealed line and advances the chain. A failed write is
// cut back so that the file ends with a complete entry.
func (l *Log) write(line []byte, hash string) error {
	if _, err := l.f.Write(line); err != nil {
		l.torn = true
		if cerr := l.cutTorn(); cerr != nil {
			return fmt.Errorf("decision log: %w (and %v)", err, cerr)
		}
		return fmt.Errorf("decision log: %w", err)
	}
	l.size += int64(len(line))
	l.seq++
	l.last = hash
	return nil
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

// seal fills in the chain fields and returns the line and its hash.
func (l *Log) seal(e Entry) ([]byte, string, error) {
	e.Seq, e.Prev, e.Hash = l.seq, l.last, ""
	e.Time = l.opts.Now().UTC().Format(time.RFC3339Nano)
	body, err := json.Marshal(e)
	if err != nil {
		return nil, "", fmt.Errorf("decision log: %w", err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	line := make([]byte, 0, len(body)+len(hash)+12)
	line = append(line, body[:len(body)-1]...)
	line = append(line, `,"hash":"`...)
	line = append(line, hash...)
	line = append(line, "\"}\n"...)
	return line, hash, nil
}

// rotate hands the head to OnRotate, then moves the live file to path.1
// (older ones shift up, the oldest beyond Keep is dropped) and opens a new,
// empty live file; the caller writes its rotation mark.
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

// Close closes the file.
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
