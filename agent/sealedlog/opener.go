package sealedlog

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
)

// Kind says what an Event reports.
type Kind int

// Event kinds, in the order a reader meets them.
const (
	// Data is plaintext recovered from a record in its place.
	Data Kind = iota
	// Late is plaintext of a record that arrived after later records of
	// its stream (reordered); its place was reported Missing before.
	Late
	// NewStream is a stream's first header.
	NewStream
	// StartsLate: the input starts in the middle of a stream (records
	// First..Last were before it: log rotation, --tail, --since, or
	// dropped).
	StartsLate
	// Missing: records First..Last of a stream are not in the input.
	Missing
	// Replayed: a record that was already read (or one after the
	// stream's end) arrived again; it is not shown twice.
	Replayed
	// Closed: the stream's final record; everything it sealed is present
	// unless Missing said otherwise.
	Closed
	// NotClosed (from End): the input ends before the stream's final
	// record; the container may still be running, or its tail was cut.
	NotClosed
	// Rejected: a sealed line that is malformed, does not authenticate,
	// belongs to a stream whose header never came, or conflicts with a
	// header already seen. Its content is not shown.
	Rejected
	// Unsealed: a line that is not sealed at all; the host (or a
	// container that is not sealed) wrote it. Its content is not shown.
	Unsealed
)

// Event is one thing an Opener found.
type Event struct {
	Kind Kind
	// Stream is the stream's label and id ("label#id").
	Stream string
	// First and Last are sequence numbers (Data, Late, Replayed: both the
	// record's).
	First, Last uint64
	// Data is the plaintext of Data and Late events.
	Data []byte
	// Reason explains Rejected events.
	Reason string
}

// stream is what the opener knows about one stream.
type stream struct {
	name    string
	hdr     []byte // the header as first seen
	rc      *recordCipher
	started bool
	next    uint64      // one past the highest sequence number read
	gaps    [][2]uint64 // ranges below next not read yet, ascending
	closed  bool
}

// maxGaps bounds the reorder bookkeeping per stream; beyond it the oldest
// gaps are forgotten and a record filling one reads as Replayed.
const maxGaps = 4096

// maxHeld bounds the bytes of records held while their header has not been
// seen yet (output read from the middle carries the header again within
// Options.HeaderEvery bytes).
const maxHeld = 8 << 20

// Opener reads sealed lines with the owner's private key. It is not safe
// for concurrent use.
type Opener struct {
	priv    hpke.PrivateKey
	keyID   [idSize]byte
	curve   ecdh.Curve
	streams map[[idSize]byte]*stream
	held    map[[idSize]byte][][]byte
	heldN   int
}

// NewOpener returns an Opener for the owner's key.
func NewOpener(priv *ecdh.PrivateKey) (*Opener, error) {
	if _, err := kemFor(priv.Curve()); err != nil {
		return nil, err
	}
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("sealedlog: %w", err)
	}
	return &Opener{priv: k, keyID: KeyID(priv.PublicKey()), curve: priv.Curve(),
		streams: map[[idSize]byte]*stream{}, held: map[[idSize]byte][][]byte{}}, nil
}

// Line reads one line of input (with or without its newline). Text before
// the sealed prefix, such as a kubectl --timestamps stamp, is ignored.
func (o *Opener) Line(l []byte) []Event {
	l = bytes.TrimRight(l, "\r\n")
	i := bytes.Index(l, []byte(linePrefix))
	if i < 0 {
		return []Event{{Kind: Unsealed}}
	}
	l = l[i:]
	if len(l) > maxLine {
		return []Event{{Kind: Rejected, Reason: fmt.Sprintf("sealed line longer than %d bytes", maxLine)}}
	}
	if b, err := decodeLine(l, HeaderPrefix); err == nil {
		return o.header(b)
	} else if err != errOtherType {
		return []Event{{Kind: Rejected, Reason: "header: " + err.Error()}}
	}
	b, err := decodeLine(l, RecordPrefix)
	if err != nil {
		return []Event{{Kind: Rejected, Reason: "record: " + err.Error()}}
	}
	return o.record(b)
}

var errOtherType = errors.New("not a line of this type")

// decodeLine returns the payload of a sealed line of one type.
func decodeLine(l []byte, prefix string) ([]byte, error) {
	l = bytes.TrimRight(l, "\r\n")
	rest, ok := bytes.CutPrefix(l, []byte(prefix))
	if !ok {
		return nil, errOtherType
	}
	return base64.RawURLEncoding.Strict().AppendDecode(nil, rest)
}

func (o *Opener) header(b []byte) []Event {
	h, err := parseHeader(b)
	if err != nil {
		return []Event{{Kind: Rejected, Reason: "header: " + err.Error()}}
	}
	name := streamName(h.label, h.stream)
	if s, ok := o.streams[h.stream]; ok {
		if bytes.Equal(s.hdr, b) {
			return nil // the periodic repeat
		}
		return []Event{{Kind: Rejected, Stream: name, Reason: "a second, different header for this stream"}}
	}
	if h.keyID != o.keyID {
		return []Event{{Kind: Rejected, Stream: name, Reason: fmt.Sprintf("sealed to key %x, this key is %x", h.keyID, o.keyID)}}
	}
	kdf, aead := hpkeSuite()
	r, err := hpke.NewRecipient(h.enc, o.priv, kdf, aead, h.info())
	if err != nil {
		return []Event{{Kind: Rejected, Stream: name, Reason: "header: " + err.Error()}}
	}
	rc, err := newRecordCipher(r)
	if err != nil {
		return []Event{{Kind: Rejected, Stream: name, Reason: "header: " + err.Error()}}
	}
	o.streams[h.stream] = &stream{name: name, hdr: bytes.Clone(b), rc: rc}
	evs := []Event{{Kind: NewStream, Stream: name}}
	held := o.held[h.stream]
	delete(o.held, h.stream)
	for _, rec := range held {
		o.heldN -= len(rec)
		evs = append(evs, o.record(rec)...)
	}
	return evs
}

func streamName(label string, id [idSize]byte) string { return label + "#" + hex.EncodeToString(id[:]) }

func (o *Opener) record(b []byte) []Event {
	if len(b) < recordHdrSize+16 {
		return []Event{{Kind: Rejected, Reason: "record: truncated"}}
	}
	id := [idSize]byte(b[:idSize])
	s, ok := o.streams[id]
	if !ok {
		if o.heldN+len(b) > maxHeld {
			return []Event{{Kind: Rejected, Stream: "#" + hex.EncodeToString(id[:]), Reason: "record of a stream whose header is not in the input"}}
		}
		o.held[id] = append(o.held[id], b)
		o.heldN += len(b)
		return nil
	}
	seq := binary.BigEndian.Uint64(b[idSize:])
	flags := b[idSize+8]
	plain, err := s.rc.aead.Open(nil, s.rc.nonce(seq), b[recordHdrSize:], aad(b))
	if err != nil || flags&^flagFinal != 0 {
		return []Event{{Kind: Rejected, Stream: s.name, First: seq, Last: seq, Reason: "record does not authenticate (forged or damaged)"}}
	}
	var evs []Event
	kind := Data
	switch {
	case !s.started || seq >= s.next:
		if s.closed {
			return []Event{{Kind: Replayed, Stream: s.name, First: seq, Last: seq}}
		}
		if seq > s.next {
			k := Missing
			if !s.started {
				k = StartsLate
			}
			evs = append(evs, Event{Kind: k, Stream: s.name, First: s.next, Last: seq - 1})
			s.addGap(s.next, seq-1)
		}
		s.started, s.next = true, seq+1
	case s.takeGap(seq):
		kind = Late
	default:
		return []Event{{Kind: Replayed, Stream: s.name, First: seq, Last: seq}}
	}
	if len(plain) > 0 {
		evs = append(evs, Event{Kind: kind, Stream: s.name, First: seq, Last: seq, Data: plain})
	}
	if flags&flagFinal != 0 {
		s.closed = true
		evs = append(evs, Event{Kind: Closed, Stream: s.name, First: seq, Last: seq})
	}
	return evs
}

func (s *stream) addGap(lo, hi uint64) {
	s.gaps = append(s.gaps, [2]uint64{lo, hi})
	if len(s.gaps) > maxGaps {
		s.gaps = s.gaps[1:]
	}
}

// takeGap removes seq from the gaps and reports whether it was in one.
func (s *stream) takeGap(seq uint64) bool {
	i := sort.Search(len(s.gaps), func(i int) bool { return s.gaps[i][1] >= seq })
	if i == len(s.gaps) || s.gaps[i][0] > seq {
		return false
	}
	g := s.gaps[i]
	var repl [][2]uint64
	if g[0] < seq {
		repl = append(repl, [2]uint64{g[0], seq - 1})
	}
	if seq < g[1] {
		repl = append(repl, [2]uint64{seq + 1, g[1]})
	}
	s.gaps = append(s.gaps[:i], append(repl, s.gaps[i+1:]...)...)
	return true
}

// End reports what the end of the input leaves open: streams without their
// final record, and records whose header never came.
func (o *Opener) End() []Event {
	var evs []Event
	names := make([]string, 0, len(o.streams))
	byName := map[string]*stream{}
	for _, s := range o.streams {
		names = append(names, s.name)
		byName[s.name] = s
	}
	sort.Strings(names)
	for _, n := range names {
		if s := byName[n]; !s.closed {
			evs = append(evs, Event{Kind: NotClosed, Stream: n, First: s.next})
		}
	}
	ids := make([]string, 0, len(o.held))
	for id, recs := range o.held {
		ids = append(ids, fmt.Sprintf("#%x (%d records)", id, len(recs)))
	}
	sort.Strings(ids)
	for _, id := range ids {
		evs = append(evs, Event{Kind: Rejected, Stream: id, Reason: "records of a stream whose header is not in the input"})
	}
	return evs
}
