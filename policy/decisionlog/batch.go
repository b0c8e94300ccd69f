package decisionlog

import (
	"errors"
	"sync"
)

// queue is the group commit: appends that arrive while a batch is being
// written wait here, and the first of them writes them all as the next
// batch, in one write. Nobody waits for a timer: a lone append is written
// at once, and a batch is whatever queued during the previous write.
type queue struct {
	mu      sync.Mutex
	waiting []*waiter
	spare   []*waiter // the previous batch's slice, reused
	writing bool      // some append is writing a batch
	pool    sync.Pool // of *waiter, so that waiting allocates nothing
}

// waiter is one Append waiting for its line.
type waiter struct {
	e    Entry
	hash string
	err  error
	// wake receives true when the line is written (or failed), false
	// when this append is to write the next batch.
	wake chan bool
}

func (q *queue) init() {
	q.pool.New = func() any { return &waiter{wake: make(chan bool, 1)} }
}

// append queues e and returns once its line is written, writing the
// batch itself when no other append is.
func (q *queue) append(l *Log, e *Entry) (string, error) {
	w := q.pool.Get().(*waiter)
	w.e, w.hash, w.err = *e, "", nil
	q.mu.Lock()
	q.waiting = append(q.waiting, w)
	lead := !q.writing
	q.writing = true
	q.mu.Unlock()
	if lead || !<-w.wake {
		q.lead(l, w)
	}
	hash, err := w.hash, w.err
	w.e = Entry{} // do not keep the caller's ops alive in the pool
	q.pool.Put(w)
	return hash, err
}

// lead writes everything queued, self included, as one batch, wakes the
// batch's other appends, then hands the writing to the first append that
// queued meanwhile, if any.
func (q *queue) lead(l *Log, self *waiter) {
	q.mu.Lock()
	batch := q.waiting
	q.waiting = q.spare[:0]
	q.mu.Unlock()
	// Deferred so that a panic in writeBatch, which reaches this append,
	// neither leaves the others waiting nor the queue without a writer.
	defer q.finish(batch, self)
	l.writeBatch(batch)
}

// finish wakes the appends of a written batch and passes the writing on.
func (q *queue) finish(batch []*waiter, self *waiter) {
	for _, w := range batch {
		if w.hash == "" && w.err == nil {
			w.err = errors.New("decision log: the entry was not written (the write panicked)")
		}
		if w != self {
			w.wake <- true
		}
	}
	clear(batch)
	q.mu.Lock()
	q.spare = batch[:0]
	if len(q.waiting) > 0 {
		q.waiting[0].wake <- false
	} else {
		q.writing = false
	}
	q.mu.Unlock()
}
