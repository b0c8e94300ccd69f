// Package stream owns a container process's standard I/O as the Kata runtime
// sees it: pipes or a pseudo-terminal created before the process starts, reads
// that return one chunk at a time (an empty chunk is EOF), writes and close of
// stdin, terminal resizing, and the "discard" mode a denied read switches to so
// that the workload never blocks on a full pipe nobody reads.
//
// Every parent-side descriptor is non-blocking and registered with Go's
// poller, so a read blocked on a silent pipe can be interrupted with a
// deadline. That is how the drain window works: once the process has been
// reaped, a read that finds no data waits at most DrainWindow and then
// reports EOF, even if a daemonised grandchild still holds the write end.
package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// DrainWindow is how long a read may still wait for data after the process
// it belongs to has been reaped.
const DrainWindow = 200 * time.Millisecond

// MaxRead bounds one read: the runtime asks for 32 KiB; a larger len from the
// wire is clamped rather than allocated.
const MaxRead = 1 << 20

// Which names one of a process's output streams.
type Which int

// Output streams.
const (
	Stdout Which = iota
	Stderr
)

func (w Which) String() string {
	if w == Stderr {
		return "stderr"
	}
	return "stdout"
}

// Options shape the I/O of one process.
type Options struct {
	// Terminal gives the process a pseudo-terminal instead of pipes.
	Terminal bool
	// PipeSize, when > 0, is applied to the stdout and stderr pipes with
	// F_SETPIPE_SZ (agent.container_pipe_size).
	PipeSize int
}

// IO is the parent side of one process's standard streams. It is safe for
// concurrent use.
type IO struct {
	terminal bool

	stdinMu sync.Mutex
	stdin   *os.File // parent write end; nil once closed (or tty mode)
	written bool     // Write was called; stdin can no longer be filtered
	filter  *stdinFilter

	out [2]*reader

	ttyMu sync.Mutex
	pty   *os.File // terminal master, once received

	exited atomic.Bool
}

// Child are the descriptors handed to the process; the caller closes them
// (CloseChild) once the process has started.
type Child struct {
	Stdin, Stdout, Stderr *os.File
}

// New creates the pipes for a process. In terminal mode no pipes are made:
// the caller obtains the master later and hands it over with SetTerminal.
func New(o Options) (*IO, Child, error) {
	io := &IO{terminal: o.Terminal}
	io.out[Stdout] = &reader{}
	io.out[Stderr] = &reader{}
	if o.Terminal {
		io.out[Stderr].eof = true
		return io, Child{}, nil
	}
	var child Child
	var err error
	var closers []*os.File
	fail := func(e error) (*IO, Child, error) {
		for _, f := range closers {
			f.Close()
		}
		return nil, Child{}, e
	}
	r, w, err := stdinPipe()
	if err != nil {
		return fail(err)
	}
	closers = append(closers, r, w)
	child.Stdin, io.stdin = r, w
	for _, which := range []Which{Stdout, Stderr} {
		r, w, err := pipe()
		if err != nil {
			return fail(err)
		}
		closers = append(closers, r, w)
		if o.PipeSize > 0 {
			if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, o.PipeSize); err != nil {
				return fail(fmt.Errorf("set %s pipe size to %d: %w", which, o.PipeSize, err))
			}
		}
		io.out[which].f = r
		if which == Stdout {
			child.Stdout = w
		} else {
			child.Stderr = w
		}
	}
	return io, child, nil
}

// pipe returns a pipe whose read end is non-blocking and polled by the
// runtime and whose write end is blocking (it goes to the process).
func pipe() (r, w *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("pipe: %w", err)
	}
	return pollable(p[0], "pipe-r"), os.NewFile(uintptr(p[1]), "pipe-w"), nil
}

// stdinPipe is pipe reversed: the process reads a blocking end (O_NONBLOCK
// lives on the shared file description, so the process would see EAGAIN),
// the agent writes a polled one.
func stdinPipe() (r, w *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("pipe: %w", err)
	}
	return os.NewFile(uintptr(p[0]), "stdin-r"), pollable(p[1], "stdin-w"), nil
}

// pollable wraps fd so that Go's poller owns it and deadlines work.
func pollable(fd int, name string) *os.File {
	_ = unix.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), name)
}

// CloseChild closes the process's ends in the agent once it has started, so
// that EOF is seen when the process (and its children) close theirs.
func (c Child) CloseChild() {
	for _, f := range []*os.File{c.Stdin, c.Stdout, c.Stderr} {
		if f != nil {
			f.Close()
		}
	}
}

// Terminal reports whether the process has a pseudo-terminal.
func (s *IO) Terminal() bool { return s.terminal }

// SetTerminal hands over the terminal master received from the process.
// The IO takes ownership of f.
func (s *IO) SetTerminal(f *os.File) error {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	f.Close()
	if err != nil {
		return fmt.Errorf("terminal master: %w", err)
	}
	m := pollable(fd, "pty-master")
	s.ttyMu.Lock()
	s.pty = m
	s.ttyMu.Unlock()
	s.out[Stdout].setFile(m)
	return nil
}

// Write copies data to the process's stdin. Empty data closes stdin, as in
// Kata. It returns the number of bytes written.
func (s *IO) Write(data []byte) (int, error) {
	if len(data) == 0 {
		return 0, s.CloseStdin()
	}
	if s.terminal {
		s.ttyMu.Lock()
		m := s.pty
		s.ttyMu.Unlock()
		if m == nil {
			return 0, errors.New("terminal not ready")
		}
		return m.Write(data)
	}
	s.stdinMu.Lock()
	s.written = true
	if s.filter != nil {
		return s.writeFiltered(data) // unlocks
	}
	defer s.stdinMu.Unlock()
	if s.stdin == nil {
		return 0, ErrStdinClosed
	}
	return s.stdin.Write(data)
}

// ErrStdinClosed is returned by Write after CloseStdin.
var ErrStdinClosed = errors.New("stdin is closed")

// CloseStdin closes the process's stdin. On a terminal there is no separate
// stdin to close; the end-of-file character is sent instead, which is what a
// user typing ^D would do and what ends a line-disciplined read.
func (s *IO) CloseStdin() error {
	if s.terminal {
		s.ttyMu.Lock()
		m := s.pty
		s.ttyMu.Unlock()
		if m == nil {
			return nil
		}
		_, err := m.Write([]byte{4})
		return err
	}
	s.stdinMu.Lock()
	if s.filter != nil {
		return s.closeFiltered() // unlocks
	}
	defer s.stdinMu.Unlock()
	if s.stdin == nil {
		return nil
	}
	err := s.stdin.Close()
	s.stdin = nil
	return err
}

// Resize sets the terminal's window size.
func (s *IO) Resize(rows, cols uint16) error {
	if !s.terminal {
		return errNoTerminal
	}
	s.ttyMu.Lock()
	defer s.ttyMu.Unlock()
	if s.pty == nil {
		return errNoTerminal
	}
	ws := &unix.Winsize{Row: rows, Col: cols}
	conn, err := s.pty.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := conn.Control(func(fd uintptr) { ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); err != nil {
		return err
	}
	return ierr
}

var errNoTerminal = errors.New("process has no terminal")

// ErrNoTerminal reports whether err means the process has no terminal.
func ErrNoTerminal(err error) bool { return errors.Is(err, errNoTerminal) }

// Read returns the next chunk of at most n bytes from the stream, for the
// caller to keep; an empty chunk with a nil error is EOF.
func (s *IO) Read(w Which, n int) ([]byte, error) {
	return s.ReadLent(context.Background(), w, n) // a loan that never ends
}

// Discard switches a stream to discard mode: the agent keeps draining it so
// the process never blocks, and readers see EOF from now on.
func (s *IO) Discard(w Which) {
	s.out[w].discard(&s.exited)
}

// Exited tells the streams that the process has been reaped, starting the
// drain window of blocked and future reads.
func (s *IO) Exited() {
	s.exited.Store(true)
	for _, r := range s.out {
		r.wake()
	}
}

// Close releases every descriptor. Pending reads return EOF.
func (s *IO) Close() {
	s.exited.Store(true)
	s.closeStdinPipe()
	for _, r := range s.out {
		r.close()
	}
	s.ttyMu.Lock()
	s.pty = nil
	s.ttyMu.Unlock()
}

// compile-time check that *os.File stays usable as an io.Reader here.
var _ io.Reader = (*os.File)(nil)
