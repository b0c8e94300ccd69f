package stream

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// A sealed stream never hands the process's bytes to a reader: a pump
// drains the pipe (or terminal) for as long as the process writes, turns
// the bytes into sealed lines and queues those for ReadStdout/ReadStderr.
// The queue is bounded and the pump never waits for room: when it is full
// (nobody reads, the read was refused, the reader is slow) new output is
// dropped, unsealed, and counted; the sequence numbers its records would
// have had are skipped. A dropped record is a gap its owner's tool reports
// ("MISSING records"), so the workload never blocks on the reader, and the
// host learns nothing it could not learn by not reading.

// Sealer turns output into sealed lines (sealedlog.Sealer); declared here
// so that stream needs no cryptography. It must be safe for concurrent use.
type Sealer interface {
	// Append seals p onto out (a partial line may be held back).
	Append(out, p []byte) ([]byte, error)
	// Bound is the most bytes Append of n bytes can add now.
	Bound(n int) int
	// Skip drops p and what is held, unsealed, leaving a gap the owner
	// sees.
	Skip(p []byte)
	Pending() int
	Flush() []byte
	Close() []byte
}

// SealOptions tune a sealed stream; zero values take the defaults.
type SealOptions struct {
	// Queue bounds the sealed bytes waiting for a reader (default 4 MiB).
	Queue int
	// FlushAfter is how long a partial line is held before it is sealed
	// on its own (default 100 ms): a prompt without a newline still
	// shows, a program writing a byte at a time costs one record per
	// interval, not per byte.
	FlushAfter time.Duration
	// Preamble is queued before anything the process writes, whatever
	// the queue's state (an encrypted exec announces its stdin key so).
	Preamble []byte
}

// DefaultSealQueue is SealOptions.Queue's default.
const DefaultSealQueue = 4 << 20

// DefaultFlushAfter is SealOptions.FlushAfter's default.
const DefaultFlushAfter = 100 * time.Millisecond

var errSealAfterRead = errors.New("stream: sealed after it was read")

// Seal makes the stream w carry only what s produces. It must be called
// before the stream is first read (the sandbox does it before the
// container is registered, so no request can reach it earlier); bytes the
// process wrote before are still in the pipe and are sealed like the rest.
func (s *IO) Seal(w Which, sl Sealer, o SealOptions) error {
	r := s.out[w]
	if o.Queue <= 0 {
		o.Queue = DefaultSealQueue
	}
	if o.FlushAfter <= 0 {
		o.FlushAfter = DefaultFlushAfter
	}
	so := &sealedOut{s: sl, limit: o.Queue, flushAfter: o.FlushAfter, ready: make(chan struct{})}
	r.st.Lock()
	if r.used.Load() || r.sealed != nil {
		r.st.Unlock()
		return errSealAfterRead
	}
	f := r.f
	r.sealed = so
	r.st.Unlock()
	so.mu.Lock()
	so.queue(o.Preamble, true)
	so.mu.Unlock()
	if f == nil || r.eof || r.closed {
		// Nothing to pump (a terminal's stderr): the stream only ends.
		so.finish()
		return nil
	}
	go so.pump(r, f, &s.exited)
	return nil
}

// Note seals msg into stream w as if the process had written it: the
// agent tells the owner, and only the owner, why a session ended. It does
// nothing on a stream that is not sealed.
func (s *IO) Note(w Which, msg []byte) {
	if so := s.out[w].sealedOut(); so != nil {
		so.write(msg)
	}
}

// Sealed reports whether stream w is sealed.
func (s *IO) Sealed(w Which) bool { return s.out[w].sealedOut() != nil }

// Dropped is the number of bytes stream w dropped because its queue was
// full: output dropped before it was sealed, and the sealed lines of
// flushed partial lines that did not fit (0 for a stream that is not
// sealed).
func (s *IO) Dropped(w Which) int64 {
	if so := s.out[w].sealedOut(); so != nil {
		return so.dropped.Load()
	}
	return 0
}

func (r *reader) sealedOut() *sealedOut {
	r.st.Lock()
	defer r.st.Unlock()
	return r.sealed
}

// sealedOut is the queue of one sealed stream.
type sealedOut struct {
	s          Sealer
	limit      int
	flushAfter time.Duration
	dropped    atomic.Int64 // plaintext dropped unsealed, or sealed bytes of a dropped flush

	mu         sync.Mutex
	q          []byte
	off        int
	done       bool          // the final record is queued
	discarding bool          // nobody will read: drop everything
	timer      *time.Timer   // pending flush of a partial line
	ready      chan struct{} // closed when q grows or done is set
}

// pump drains f until EOF (the drain window applies once the process has
// been reaped) and seals what it reads.
func (so *sealedOut) pump(r *reader, f *os.File, exited *atomic.Bool) {
	buf := make([]byte, 64<<10)
	for {
		n, eof, err := r.readChunk(f, buf, exited)
		if n > 0 {
			so.write(buf[:n])
		}
		if eof || err != nil {
			so.finish()
			return
		}
	}
}

func (so *sealedOut) write(p []byte) {
	// Never wait for the reader: a slow or absent one must not stall the
	// workload. Output whose sealed lines might not fit in the queue is
	// dropped before it is sealed (sealing it only to drop it would cost
	// the pump most of its time exactly when the reader lags), and the
	// owner sees the gap when opening the log.
	so.mu.Lock()
	defer so.mu.Unlock()
	if so.discarding || so.done {
		return
	}
	if len(so.q)-so.off+so.s.Bound(len(p)) > so.limit {
		so.s.Skip(p)
		so.dropped.Add(int64(len(p)))
		return
	}
	so.compact()
	before := len(so.q)
	q, err := so.s.Append(so.q, p)
	if err != nil {
		return // only after Close, which finish calls last
	}
	so.q = q
	if len(q) > before {
		so.wake()
	}
	if so.timer == nil && so.s.Pending() > 0 {
		so.timer = time.AfterFunc(so.flushAfter, so.flush)
	}
}

func (so *sealedOut) flush() {
	so.mu.Lock()
	defer so.mu.Unlock()
	so.timer = nil
	if so.discarding || so.done {
		return
	}
	so.queue(so.s.Flush(), false)
}

// finish seals the end of the stream; its final record is queued even
// when the queue is full, so a reader who catches up sees the end.
func (so *sealedOut) finish() {
	so.mu.Lock()
	defer so.mu.Unlock()
	if so.done {
		return
	}
	if so.timer != nil {
		so.timer.Stop()
		so.timer = nil
	}
	out := so.s.Close()
	if !so.discarding {
		so.queue(out, true)
	}
	so.done = true
	so.wake()
}

// queue appends whole sealed lines, or drops them when the queue is full.
// Callers hold mu.
func (so *sealedOut) queue(out []byte, always bool) {
	if len(out) == 0 {
		return
	}
	if !always && len(so.q)-so.off+len(out) > so.limit {
		so.dropped.Add(int64(len(out)))
		return
	}
	so.compact()
	so.q = append(so.q, out...)
	so.wake()
}

// compact moves the unread part of the queue to its start once the read
// part is at least half of it. Callers hold mu.
func (so *sealedOut) compact() {
	if so.off > 0 && so.off >= len(so.q)/2 {
		so.q = append(so.q[:0], so.q[so.off:]...)
		so.off = 0
	}
}

// wake releases blocked readers. Callers hold mu.
func (so *sealedOut) wake() {
	close(so.ready)
	so.ready = make(chan struct{})
}

// readInto reads up to len(buf) queued bytes into buf, blocking until there
// are some, and returns their number; 0 is the end of the stream.
func (so *sealedOut) readInto(buf []byte) int {
	return so.take(func(q []byte) int { return copy(buf, q) })
}

// take blocks until bytes are queued and consumes the number of them that
// use (called with mu held) returns; 0 is the end of the stream.
func (so *sealedOut) take(use func(q []byte) int) int {
	for {
		so.mu.Lock()
		if so.discarding {
			so.mu.Unlock()
			return 0
		}
		if len(so.q) > so.off {
			k := use(so.q[so.off:])
			so.off += k
			if so.off == len(so.q) {
				so.q, so.off = so.q[:0], 0
			}
			so.mu.Unlock()
			return k
		}
		if so.done {
			so.mu.Unlock()
			return 0
		}
		ready := so.ready
		so.mu.Unlock()
		<-ready
	}
}

// discard drops what is queued and all that follows; the pump keeps
// draining the process's output.
func (so *sealedOut) discard() {
	so.mu.Lock()
	defer so.mu.Unlock()
	so.discarding = true
	so.q, so.off = nil, 0
	so.wake()
}
