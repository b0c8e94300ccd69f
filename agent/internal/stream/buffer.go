package stream

import (
	"context"
	"errors"
	"sync/atomic"
)

// Read buffers. The chunk a read returns goes into the rpc response and is
// owned by ttrpc until it has been marshalled, which happens after the
// handler returns.
//
// ReadLent knows when that is: ttrpc marshals the response in the request's
// goroutine and only then cancels the request's context (ttrpc v1.2.10
// services.go, serviceSet.handle: `defer cancel()` around unaryCall, whose
// protoMarshal copies the response). So the next read reuses a chunk whose
// context was cancelled, and the runtime's read loop cycles through two
// buffers instead of allocating 32 KiB per read (with ttrpc's own two
// copies, the agent's main source of garbage under load).
// A context that ends any other way keeps its chunk: a deadline may fire
// while the response is being marshalled. The one cancellation that is not
// the end of the call, the connection going away, happens after ttrpc has
// stopped sending that connection's responses (serverConn.run closes done
// before it cancels), so a reused chunk is never sent.
//
// Read (no context) is a read whose chunk is never taken back.

// maxScratch is the largest lent buffer a stream keeps: the runtime's
// 32 KiB and anything up to twice that. Larger reads (up to MaxRead)
// allocate every time.
const maxScratch = 64 << 10

// maxLoans bounds the chunks a stream tracks: the runtime has one read
// loop per stream, so one loan whose request is ending and one for the
// read under way; a host that runs more reads at once gets new buffers.
const maxLoans = 2

// loan is a buffer lent to a request.
type loan struct {
	ctx context.Context
	buf []byte
}

// borrow returns a buffer of length n: one whose request was cancelled
// (its response has been marshalled), or a new one. Requests that ended
// any other way are forgotten, their buffers left to the collector.
func (r *reader) borrow(n int) []byte {
	var found []byte
	r.loanMu.Lock()
	kept := r.loans[:0]
	for _, l := range r.loans {
		switch err := l.ctx.Err(); {
		case err == nil:
			kept = append(kept, l)
		case found == nil && cap(l.buf) >= n && errors.Is(err, context.Canceled):
			found = l.buf[:n]
		}
	}
	clear(r.loans[len(kept):])
	r.loans = kept
	r.loanMu.Unlock()
	if found != nil {
		return found
	}
	return make([]byte, n, max(n, readSizeHint))
}

// readSizeHint is the capacity new lent buffers get, so that a buffer made
// for a short read serves the runtime's 32 KiB reads too.
const readSizeHint = 32 << 10

// lend records that buf is lent to ctx. A context that cannot end, or has
// ended already, keeps buf for good, as does a large buffer.
func (r *reader) lend(ctx context.Context, buf []byte) {
	if ctx.Done() == nil || ctx.Err() != nil || cap(buf) > maxScratch {
		return
	}
	r.loanMu.Lock()
	if len(r.loans) < maxLoans && !r.loansDone {
		r.loans = append(r.loans, loan{ctx, buf})
	}
	r.loanMu.Unlock()
}

// dropLoans forgets every loan for good (the stream has ended).
func (r *reader) dropLoans() {
	r.loanMu.Lock()
	r.loans, r.loansDone = nil, true
	r.loanMu.Unlock()
}

// ReadLent is Read for a caller that hands the chunk on and is done with it
// once ctx is cancelled: an rpc handler, whose response ttrpc marshals before
// it cancels the request's context.
func (s *IO) ReadLent(ctx context.Context, w Which, n int) ([]byte, error) {
	if n > MaxRead {
		n = MaxRead
	}
	return s.out[w].readLent(ctx, n, &s.exited)
}

func (r *reader) readLent(ctx context.Context, n int, exited *atomic.Bool) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	r.used.Store(true)
	if so := r.sealedOut(); so != nil {
		buf := r.borrow(n)
		k := so.readInto(buf)
		return r.lent(ctx, buf, k), nil
	}
	if r.snapshot() == nil {
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.snapshot()
	if f == nil {
		return nil, nil
	}
	buf := r.borrow(n)
	k, eof, err := r.readChunk(f, buf, exited)
	if eof {
		r.setEOF()
		r.dropLoans()
	}
	return r.lent(ctx, buf, k), err
}

// lent returns the first k bytes of buf lent to ctx.
func (r *reader) lent(ctx context.Context, buf []byte, k int) []byte {
	if k == 0 {
		return nil
	}
	r.lend(ctx, buf)
	return buf[:k]
}
