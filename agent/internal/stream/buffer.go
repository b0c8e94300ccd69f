package stream

// Read buffers. The chunk a read returns goes into the rpc response and is
// owned by ttrpc until it has been marshalled, which happens after the
// handler returns, so a buffer handed out can never be taken back. What can
// be saved is the common interactive case: a 32 KiB read that finds a line
// or two. Such reads fill the stream's scratch buffer and return a copy of
// just the bytes read; reads that fill most of the buffer hand it over as is
// (no copy) and the next read makes a new one.

// maxScratch is the largest scratch buffer a stream keeps: the runtime's
// 32 KiB and anything up to twice that. Larger reads (up to MaxRead)
// allocate every time.
const maxScratch = 64 << 10

// buffer returns a buffer of length n for one read. Callers hold r.mu.
func (r *reader) buffer(n int) []byte {
	if n > maxScratch {
		return make([]byte, n)
	}
	if cap(r.scratch) < n {
		r.scratch = make([]byte, n)
	}
	return r.scratch[:n]
}

// keep returns the first k bytes of buf, which came from buffer, for the
// caller to own. Callers hold r.mu.
func (r *reader) keep(buf []byte, k int) []byte {
	n := len(buf)
	switch {
	case k == 0:
		return nil
	case n > maxScratch:
		return buf[:k]
	case 2*k > n:
		r.scratch = nil // handed over with the chunk
		return buf[:k]
	}
	return append([]byte(nil), buf[:k]...)
}
