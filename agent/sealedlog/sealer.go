package sealedlog

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Options tune a Sealer; zero values take the defaults.
type Options struct {
	// MaxRecord is the most plaintext one record carries (default and
	// limit MaxRecordPlain).
	MaxRecord int
	// HeaderEvery is how many sealed bytes may pass before the header is
	// sent again (default 1 MiB), so output read after kubelet rotated
	// the log file, or with --tail, still carries the key.
	HeaderEvery int
}

// Sealer turns one output stream into sealed lines. Complete lines of
// output are sealed as soon as they are written, several to a record; a
// trailing partial line is held until its newline arrives, until it fills
// a record, or until Flush (the caller's timer: hold it briefly so that a
// program writing a byte at a time does not cost a record per byte).
// It is safe for concurrent use.
type Sealer struct {
	mu          sync.Mutex
	rc          *recordCipher
	stream      [idSize]byte
	headerLine  []byte
	attestLine  []byte // sent after every copy of the header (Attest); nil when not attested
	maxRecord   int
	headerEvery int
	sinceHeader int // sealed bytes since the header was last sent; -1 before the first
	seq         uint64
	pending     []byte
	closed      bool
	scratch     []byte
	nonce       [12]byte
	ad          []byte
}

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("sealedlog: sealer is closed")

// NewSealer starts a stream sealed to owner (X25519 or P-256). label names
// the stream to its owner (e.g. "<container id>/stdout"); it is visible to
// the host and bound to the stream's key.
func NewSealer(owner *ecdh.PublicKey, label string, o Options) (*Sealer, error) {
	if len(label) > MaxLabel {
		return nil, fmt.Errorf("sealedlog: label is %d bytes, limit %d", len(label), MaxLabel)
	}
	kem, err := kemFor(owner.Curve())
	if err != nil {
		return nil, err
	}
	pk, err := hpke.NewDHKEMPublicKey(owner)
	if err != nil {
		return nil, fmt.Errorf("sealedlog: %w", err)
	}
	h := &header{kem: kem, kdf: kdfHKDFSHA256, aead: aeadAES256GCM, keyID: KeyID(owner), label: label}
	_, _ = rand.Read(h.stream[:]) // crypto/rand.Read never fails
	kdf, aead := hpkeSuite()
	enc, ctx, err := hpke.NewSender(pk, kdf, aead, h.info())
	if err != nil {
		return nil, fmt.Errorf("sealedlog: %w", err)
	}
	h.enc = enc
	rc, err := newRecordCipher(ctx)
	if err != nil {
		return nil, fmt.Errorf("sealedlog: %w", err)
	}
	if o.MaxRecord <= 0 || o.MaxRecord > MaxRecordPlain {
		o.MaxRecord = MaxRecordPlain
	}
	if o.HeaderEvery <= 0 {
		o.HeaderEvery = 1 << 20
	}
	return &Sealer{
		rc: rc, stream: h.stream, maxRecord: o.MaxRecord, headerEvery: o.HeaderEvery,
		headerLine: line(nil, HeaderPrefix, h.marshal()), sinceHeader: -1,
	}, nil
}

// Header returns the stream's header line.
func (s *Sealer) Header() []byte { return bytes.Clone(s.headerLine) }

// setAttestation makes the sealer send l after every copy of its header.
func (s *Sealer) setAttestation(l []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sinceHeader >= 0 || s.closed {
		return errAttestLate
	}
	s.attestLine = l
	return nil
}

// Write seals p and returns the sealed lines now ready (possibly none: a
// partial line is held). The result is the caller's.
func (s *Sealer) Write(p []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	out := s.appendLocked(make([]byte, 0, s.sizeFor(len(s.pending)+len(p))), p)
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Append is Write that appends the sealed lines to out, so that a caller
// with a queue seals straight into it. It appends at most Bound(len(p))
// bytes.
func (s *Sealer) Append(out, p []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return out, ErrClosed
	}
	return s.appendLocked(out, p), nil
}

// Bound is the most bytes a Write or Append of n bytes can produce now.
func (s *Sealer) Bound(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sizeFor(len(s.pending) + n)
}

// Skip drops p, and any partial line held, without sealing them: a caller
// whose reader has fallen behind spends no work on output it would drop.
// The sequence numbers the records would have used are skipped, so the
// owner's tool reports them missing.
func (s *Sealer) Skip(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.pending) + len(p)
	if s.closed || n == 0 {
		return
	}
	s.seq += uint64((n + s.maxRecord - 1) / s.maxRecord)
	s.pending = s.pending[:0]
}

func (s *Sealer) appendLocked(out, p []byte) []byte {
	if len(s.pending) > 0 {
		// Complete the held line first; only the part of p up to its
		// last newline is sealed now.
		cut := bytes.LastIndexByte(p, '\n') + 1
		if cut == 0 && len(s.pending)+len(p) < s.maxRecord {
			s.pending = append(s.pending, p...)
			return out
		}
		take := min(s.maxRecord-len(s.pending), len(p))
		if cut > 0 {
			take = min(take, cut)
		}
		s.pending = append(s.pending, p[:take]...)
		p = p[take:]
		if len(s.pending) == s.maxRecord || s.pending[len(s.pending)-1] == '\n' {
			out = s.sealLocked(out, s.pending, 0)
			s.pending = s.pending[:0]
		}
		if len(s.pending) > 0 { // p ran out before a newline
			return out
		}
	}
	cut := bytes.LastIndexByte(p, '\n') + 1
	for len(p)-cut >= s.maxRecord { // a long line: seal whole records of it
		cut += s.maxRecord
	}
	cut = min(cut, len(p))
	for done := p[:cut]; len(done) > 0; {
		n := min(len(done), s.maxRecord)
		out = s.sealLocked(out, done[:n], 0)
		done = done[n:]
	}
	s.pending = append(s.pending, p[cut:]...)
	return out
}

// Pending is the number of bytes held back as a partial line.
func (s *Sealer) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Flush seals the held partial line, if any.
func (s *Sealer) Flush() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.pending) == 0 {
		return nil
	}
	out := s.sealLocked(nil, s.pending, 0)
	s.pending = s.pending[:0]
	return out
}

// Close seals what is held and a final record that marks the stream's
// end, so its owner can tell a complete stream from a cut one.
func (s *Sealer) Close() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var out []byte
	if len(s.pending) > 0 {
		out = s.sealLocked(out, s.pending, 0)
		s.pending = nil
	}
	return s.sealLocked(out, nil, flagFinal)
}

// sealLocked appends the header when due and one record of plain.
func (s *Sealer) sealLocked(out, plain []byte, flags byte) []byte {
	if s.sinceHeader < 0 || s.sinceHeader >= s.headerEvery {
		out = append(out, s.headerLine...)
		out = append(out, s.attestLine...)
		s.sinceHeader = 0
	}
	rec := append(s.scratch[:0], s.stream[:]...)
	rec = binary.BigEndian.AppendUint64(rec, s.seq)
	rec = append(rec, flags)
	// Nonce and additional data live in the Sealer: no allocation per record.
	s.nonce = s.rc.nonceFor(s.seq)
	s.ad = append(append(s.ad[:0], RecordAAD...), rec...)
	rec = s.rc.aead.Seal(rec, s.nonce[:], plain, s.ad)
	s.scratch = rec
	s.seq++
	before := len(out)
	out = line(out, RecordPrefix, rec)
	s.sinceHeader += len(out) - before
	return out
}

// sizeFor is room for n bytes sealed: records (each line's base64 may
// round up by a character), their prefixes and the headers due.
func (s *Sealer) sizeFor(n int) int {
	records := n/s.maxRecord + 2
	size := base64.RawURLEncoding.EncodedLen(n+records*(recordHdrSize+16)) + records*(len(RecordPrefix)+2)
	return size + (size/s.headerEvery+1)*(len(s.headerLine)+len(s.attestLine))
}

// line appends prefix, base64url(payload) and a newline to out.
func line(out []byte, prefix string, payload []byte) []byte {
	out = append(out, prefix...)
	out = base64.RawURLEncoding.AppendEncode(out, payload)
	return append(out, '\n')
}
