// Package decisionlog keeps the tamper-evident record of policy decisions:
// one JSON object per line, each carrying the hash of the line before it, so
// that changing, inserting or removing any entry breaks the chain. The log is
// bounded: when a file would grow past its limit it is rotated, and the new
// file's first entry continues the same chain, so a set of rotated files
// verifies as one sequence.
package decisionlog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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
}

// Log appends entries to a file. It is safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	path string
	opts Options
	f    *os.File
	size int64
	seq  uint64
	last string
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
	tail, size, err := lastLine(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("decision log: %w", err)
	}
	reset := false
	if len(tail) > 0 {
		e, err := checkLine(tail)
		if err != nil {
			// A torn write (power loss) leaves a tail we cannot chain to:
			// keep the file for inspection and start a new, marked chain.
			if err := l.shift(); err != nil {
				return nil, err
			}
			size, reset = 0, true
		} else {
			l.seq, l.last = e.Seq+1, e.Hash
		}
	}
	if err := l.openFile(size); err != nil {
		return nil, err
	}
	if reset {
		if err := l.appendLocked(Entry{Kind: KindReset, Message: "previous log ended in an unreadable entry"}); err != nil {
			return nil, err
		}
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
	line, hash, err := l.seal(e)
	if err != nil {
		return err
	}
	if l.size > 0 && l.size+int64(len(line)) > l.opts.MaxBytes {
		if err := l.rotate(); err != nil {
			return err
		}
		if line, hash, err = l.seal(e); err != nil {
			return err
		}
	}
	return l.write(line, hash)
}

// write appends a sealed line and advances the chain.
func (l *Log) write(line []byte, hash string) error {
	n, err := l.f.Write(line)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("decision log: %w", err)
	}
	l.seq++
	l.last = hash
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

// rotate moves the live file to path.1 (older ones shift up, the oldest
// beyond Keep is dropped) and starts a new file whose first entry records
// where the chain continues from.
func (l *Log) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("decision log: %w", err)
	}
	l.f = nil
	if err := l.shift(); err != nil {
		return err
	}
	if err := l.openFile(0); err != nil {
		return err
	}
	line, hash, err := l.seal(Entry{Kind: KindRotate, Message: "continues " + filepath.Base(l.path) + ".1"})
	if err != nil {
		return err
	}
	return l.write(line, hash)
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

// lastLine returns the last line of the file (without its newline) and the
// file's size. A file whose last byte is not a newline returns the partial
// line, which checkLine then rejects.
func lastLine(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := st.Size()
	if size == 0 {
		return nil, 0, nil
	}
	const window = 64 << 10
	off := max(size-window, 0)
	buf := make([]byte, size-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	if buf[len(buf)-1] != '\n' {
		return buf, size, nil
	}
	buf = buf[:len(buf)-1]
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	} else if off > 0 {
		return buf, size, errors.New("last entry longer than 64 KiB")
	}
	return buf, size, nil
}

// hashSuffixLen is len(`,"hash":"` + 64 hex + `"}`).
const hashSuffixLen = 9 + 64 + 2

// checkLine verifies one line's own hash and returns it decoded.
func checkLine(line []byte) (Entry, error) {
	var e Entry
	if len(line) < hashSuffixLen+2 || !bytes.HasSuffix(line, []byte(`"}`)) ||
		!bytes.Equal(line[len(line)-hashSuffixLen:len(line)-hashSuffixLen+9], []byte(`,"hash":"`)) {
		return e, errors.New("entry does not end with its hash")
	}
	hash := string(line[len(line)-hashSuffixLen+9 : len(line)-2])
	body := append(bytes.Clone(line[:len(line)-hashSuffixLen]), '}')
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != hash {
		return e, errors.New("entry hash does not match its content")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("entry is not valid JSON: %w", err)
	}
	return e, nil
}

// Result summarises a verified chain.
type Result struct {
	Entries  int
	FirstSeq uint64
	LastHash string
	// Continued is true when the first file starts after a rotated file
	// that was not given (its chain begins mid-way).
	Continued bool
}

// Source is one file of a chain, oldest first.
type Source struct {
	Name string
	R    io.Reader
}

// Verify checks that the sources form one unbroken chain: every line carries
// its correct hash, links to the line before (across files too) and the
// sequence numbers increase by one. The first entry must start at the
// genesis hash, unless it is a rotate entry whose predecessor file was not
// given. Errors name the file and line.
func Verify(srcs []Source) (Result, error) {
	var r Result
	prev := ""
	var seq uint64
	for _, s := range srcs {
		sc := bufio.NewScanner(s.R)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		n := 0
		for sc.Scan() {
			n++
			e, err := checkLine(sc.Bytes())
			if err != nil {
				return r, fmt.Errorf("%s:%d: %w", s.Name, n, err)
			}
			switch {
			case r.Entries == 0:
				r.FirstSeq = e.Seq
				if e.Prev != Genesis {
					if e.Kind != KindRotate {
						return r, fmt.Errorf("%s:%d: first entry does not start the chain (prev %s)", s.Name, n, e.Prev)
					}
					r.Continued = true
				}
			case e.Kind == KindReset && e.Prev == Genesis:
				// A new chain after an unreadable tail; Open marks it so.
			case e.Prev != prev:
				return r, fmt.Errorf("%s:%d: chain broken: prev %s, want %s", s.Name, n, e.Prev, prev)
			case e.Seq != seq+1:
				return r, fmt.Errorf("%s:%d: sequence %d follows %d", s.Name, n, e.Seq, seq)
			}
			prev, seq = e.Hash, e.Seq
			r.Entries++
		}
		if err := sc.Err(); err != nil {
			return r, fmt.Errorf("%s:%d: %w", s.Name, n+1, err)
		}
		if n == 0 {
			return r, fmt.Errorf("%s: empty", s.Name)
		}
	}
	r.LastHash = prev
	return r, nil
}
