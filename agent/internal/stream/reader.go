package stream

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// reader is one output stream. mu serialises reads (the runtime has one read
// loop per stream; the lock only keeps a discard drain and a late read from
// interleaving); st guards the state flags, which are also read without mu.
type reader struct {
	mu sync.Mutex

	// armed says a read deadline may be set on f, so that the common case,
	// a live process and no deadline, costs no SetReadDeadline per read.
	armed atomic.Bool
	// loans are buffers lent to requests (buffer.go); loansDone is set
	// once the stream has ended and keeps the list empty.
	loanMu    sync.Mutex
	loans     []loan
	loansDone bool

	// used is set by the first read; a stream is sealed only before.
	used atomic.Bool

	// parking, when set (tests only, export_test.go), is called before
	// each read of f that may block, so a test can act on a blocked read
	// without sleeping. Set before the first read; never changed after.
	parking func()

	st         sync.Mutex
	sealed     *sealedOut // set once by Seal; reads then come from its queue
	f          *os.File
	eof        bool
	discarding bool
	closed     bool
}

func (r *reader) setFile(f *os.File) {
	r.st.Lock()
	r.f = f
	r.st.Unlock()
}

// snapshot returns the file to read, or nil when the stream reads as EOF.
func (r *reader) snapshot() *os.File {
	r.st.Lock()
	defer r.st.Unlock()
	if r.eof || r.discarding || r.closed {
		return nil
	}
	return r.f
}

func (r *reader) setEOF() {
	r.st.Lock()
	r.eof = true
	r.st.Unlock()
}

// readChunk performs one read. Before the process is reaped it blocks for as
// long as it takes; afterwards it waits at most DrainWindow for data.
func (r *reader) readChunk(f *os.File, buf []byte, exited *atomic.Bool) (n int, eof bool, err error) {
	r.armDeadline(f, exited)
	for {
		if r.parking != nil {
			r.parking()
		}
		n, err = f.Read(buf)
		if n > 0 {
			return n, false, nil
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if !exited.Load() {
				// A deadline from an earlier drain cannot apply to a live
				// process; re-arm and keep waiting.
				r.armDeadline(f, exited)
				continue
			}
			return 0, true, nil
		case errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed), errors.Is(err, syscall.EIO):
			// EIO is how a terminal master reports that every slave is closed.
			return 0, true, nil
		}
		return 0, false, err
	}
}

// armDeadline sets the read deadline for the process's current state. The
// second look at exited closes the race with Exited, which may have set the
// drain deadline between our load and our SetReadDeadline.
// Exited stores exited before wake sets a deadline, so a reader that saw
// exited false and skips clearing cannot drop the drain deadline.
func (r *reader) armDeadline(f *os.File, exited *atomic.Bool) {
	if !exited.Load() {
		if r.armed.Swap(false) {
			_ = f.SetReadDeadline(time.Time{})
		}
		if !exited.Load() {
			return
		}
	}
	_ = f.SetReadDeadline(time.Now().Add(DrainWindow))
	r.armed.Store(true)
}

// wake starts the drain window of a read blocked right now.
func (r *reader) wake() {
	r.st.Lock()
	f := r.f
	r.st.Unlock()
	if f != nil {
		_ = f.SetReadDeadline(time.Now().Add(DrainWindow))
		r.armed.Store(true)
	}
}

// discard turns the stream into a sink: a goroutine reads and drops
// everything until EOF, so the writer never blocks.
func (r *reader) discard(exited *atomic.Bool) {
	if so := r.sealedOut(); so != nil {
		so.discard() // its pump drains already
		return
	}
	r.st.Lock()
	if r.discarding || r.eof || r.closed || r.f == nil {
		r.discarding = true
		r.st.Unlock()
		return
	}
	r.discarding = true
	f := r.f
	r.st.Unlock()
	go func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		buf := make([]byte, 64<<10)
		for {
			_, eof, err := r.readChunk(f, buf, exited)
			if eof || err != nil {
				r.setEOF()
				return
			}
		}
	}()
}

func (r *reader) close() {
	r.st.Lock()
	defer r.st.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	if r.f != nil {
		r.f.Close()
	}
	r.dropLoans()
}
