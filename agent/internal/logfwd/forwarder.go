// Package logfwd streams the agent's log records to the Kata runtime on the
// log port (agent.log_vport, 1025). runtime-rs connects there once the ttrpc
// connection is up and reads newline-separated JSON records, taking each
// record's "level" in slog-rs's short spelling (TRCE, DEBG, INFO, WARN, ERRO,
// CRIT) and logging the whole line at that level
// (src/runtime-rs/crates/agent/src/log_forwarder.rs:62-76, 88-106).
//
// Logging never waits for the reader: records go into a bounded queue, and
// when the queue is full they are dropped and counted. The count reaches the
// reader as one "N log lines dropped" record at the point of the gap, and as
// Dropped for metrics. In confidential mode the records are filtered first
// (Redact), since the reader is the host.
package logfwd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the queue. A record larger than MaxRecord is dropped whole: a
// cut record would no longer be JSON.
const (
	DefaultQueueBytes = 1 << 20
	MaxRecord         = 64 << 10
	// markerRoom is more than a report record ever takes.
	markerRoom = 160
)

// Forwarder queues log records for the one reader connected to the log port.
// It is an io.Writer whose every Write is one record, as slog's JSON handler
// writes them.
type Forwarder struct {
	max     int
	mu      sync.Mutex
	queue   [][]byte
	bytes   int
	pending uint64        // dropped since the last report
	wake    chan struct{} // capacity 1: "the queue changed"
	dropped atomic.Uint64 // dropped ever
	now     func() time.Time
}

// New returns a forwarder that queues at most maxBytes of records
// (DefaultQueueBytes when maxBytes <= 0). Records written before any reader
// connects are kept within that bound, so the runtime sees the start-up.
func New(maxBytes int) *Forwarder {
	if maxBytes <= 0 {
		maxBytes = DefaultQueueBytes
	}
	return &Forwarder{max: maxBytes, wake: make(chan struct{}, 1), now: time.Now}
}

// Dropped reports how many records were dropped because the queue was full
// or the record too large.
func (f *Forwarder) Dropped() uint64 { return f.dropped.Load() }

// Write queues one record. It never blocks on the reader and never fails:
// a record that does not fit is counted as dropped.
func (f *Forwarder) Write(p []byte) (int, error) {
	rec := make([]byte, len(p), len(p)+1)
	copy(rec, p)
	if len(rec) == 0 || rec[len(rec)-1] != '\n' {
		rec = append(rec, '\n')
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	need := len(rec)
	if f.pending > 0 {
		need += markerRoom
	}
	if len(rec) > MaxRecord || f.bytes+need > f.max {
		f.pending++
		f.dropped.Add(1)
		return len(p), nil
	}
	if f.pending > 0 {
		f.push(f.marker(f.pending))
		f.pending = 0
	}
	f.push(rec)
	return len(p), nil
}

func (f *Forwarder) push(rec []byte) {
	f.queue = append(f.queue, rec)
	f.bytes += len(rec)
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// take empties the queue. When it is empty and records were dropped since
// the last report, the report is what the reader gets next: it has caught up.
func (f *Forwarder) take() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 && f.pending > 0 {
		m := f.marker(f.pending)
		f.pending = 0
		return [][]byte{m}
	}
	q := f.queue
	f.queue, f.bytes = nil, 0
	return q
}

// marker is the record that reports n dropped records, in the same shape
// as the others (level WARN is spelled alike by slog and slog-rs).
func (f *Forwarder) marker(n uint64) []byte {
	b, _ := json.Marshal(struct {
		Time    string `json:"time"`
		Level   string `json:"level"`
		Msg     string `json:"msg"`
		Dropped uint64 `json:"dropped"`
	}{f.now().Format(time.RFC3339Nano), "WARN", fmt.Sprintf("%d log lines dropped", n), n})
	return append(b, '\n')
}

// Serve hands the queue to one reader at a time until ctx ends; it closes l.
// A second reader while one is connected is turned away, so a process in
// the guest cannot take the stream from the runtime once it is attached.
// log reports connections; it may itself write into f.
func (f *Forwarder) Serve(ctx context.Context, l net.Listener, log *slog.Logger) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var busy atomic.Bool
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("log port: %w", err)
		}
		if !busy.CompareAndSwap(false, true) {
			log.WarnContext(ctx, "log reader refused: another reader is connected", "addr", c.RemoteAddr().String())
			c.Close()
			continue
		}
		log.InfoContext(ctx, "log reader connected", "addr", c.RemoteAddr().String())
		go func() {
			defer busy.Store(false)
			err := f.send(ctx, c)
			log.InfoContext(ctx, "log reader gone", "addr", c.RemoteAddr().String(), "error", errString(err))
		}()
	}
}

// send writes queued records to c until c fails, the reader hangs up or ctx
// ends. Records taken from the queue but not written are lost with the
// connection, like the bytes in its socket buffer.
func (f *Forwarder) send(ctx context.Context, c net.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer c.Close()
	// The reader never sends anything; a read returning means it hung up.
	go func() {
		io.Copy(io.Discard, c)
		cancel()
	}()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	for {
		for batch := f.take(); len(batch) > 0; batch = f.take() {
			for _, rec := range batch {
				if _, err := c.Write(rec); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					return err
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.wake:
		}
	}
}

func errString(err error) string {
	if err == nil || errors.Is(err, context.Canceled) {
		return ""
	}
	return err.Error()
}
