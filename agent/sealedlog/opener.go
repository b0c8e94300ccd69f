package sealedlog

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/cocoon-tee/cocoon/agent/attest"
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
	// Attested: the agent's evidence (Tee, Evidence) binds the stream's
	// header; its report data was checked (attest.go), its signature
	// and TCB were not (an attestation service's job). Sample evidence
	// is reported too, with Tee "sample": it authenticates nothing.
	Attested
	// NotAttested (from End): no evidence in the input binds the stream's
	// header (an agent without an attester or an older agent, the
	// attestation line cut from the input, or a stream the host made).
	// With OpenerOptions.RequireEvidence such a stream is Rejected instead.
	NotAttested
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
	// Tee and Evidence are the attestation of Attested events.
	Tee      string
	Evidence json.RawMessage
}

// stream is what the opener knows about one stream.
type stream struct {
	name    string
	hdr     []byte // the header as first seen
	digest  [32]byte
	tee     string   // the attester whose evidence binds the header; "" until then
	waiting [][]byte // records held until the stream is attested (RequireEvidence)
	rc      *recordCipher
	started bool
	next    uint64      // one past the highest sequence number read
	gaps    [][2]uint64 // ranges below next not read yet, ascending
	closed  bool
}

// maxGaps bounds the reorder bookkeeping per stream; beyond it the oldest
// gaps are forgotten and a record filling one reads as Replayed.
const maxGaps = 4096

// maxAttests bounds the header digests the opener remembers as attested
// (sample evidence is anyone's to make, so the input could name endless
// digests); a container attests two.
const maxAttests = 4096

// maxHeld bounds the bytes of records held while their header has not been
// seen yet (output read from the middle carries the header again within
// Options.HeaderEvery bytes).
const maxHeld = 8 << 20

// Opener reads sealed lines with the owner's private key. It is not safe
// for concurrent use.
type Opener struct {
	opt      OpenerOptions
	attests  map[[32]byte]*Attestation // checked attestations by header digest
	byDigest map[[32]byte]*stream      // streams by header digest
	priv     hpke.PrivateKey
	keyID    [idSize]byte
	curve    ecdh.Curve
	streams  map[[idSize]byte]*stream
	held     map[[idSize]byte][][]byte
	heldN    int
}

// OpenerOptions say which streams an Opener trusts.
type OpenerOptions struct {
	// RequireEvidence shows a stream's records only once the agent's
	// evidence binds its header; until then they are held (with records
	// whose header is missing, up to 8 MiB), and at the end of the input
	// a stream never attested is Rejected.
	RequireEvidence bool
	// AllowSample counts the sample attester's evidence (an agent without
	// a TEE; anyone can make it) as attesting, for RequireEvidence.
	AllowSample bool
}

// NewOpener returns an Opener for the owner's key that shows every
// authentic stream, attested or not.
func NewOpener(priv *ecdh.PrivateKey) (*Opener, error) {
	return NewOpenerWith(priv, OpenerOptions{})
}

// NewOpenerWith returns an Opener for the owner's key with options.
func NewOpenerWith(priv *ecdh.PrivateKey, opt OpenerOptions) (*Opener, error) {
	if _, err := kemFor(priv.Curve()); err != nil {
		return nil, err
	}
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("sealedlog: %w", err)
	}
	return &Opener{opt: opt, attests: map[[32]byte]*Attestation{}, byDigest: map[[32]byte]*stream{}, priv: k, keyID: KeyID(priv.PublicKey()), curve: priv.Curve(),
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
	if bytes.HasPrefix(l, []byte(AttestPrefix)) {
		return o.attestation(l)
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
	s := &stream{name: name, hdr: bytes.Clone(b), rc: rc, digest: headerDigestOf(b)}
	o.streams[h.stream] = s
	o.byDigest[s.digest] = s
	evs := []Event{{Kind: NewStream, Stream: name}}
	if at, ok := o.attests[s.digest]; ok {
		s.tee = at.Tee
		evs = append(evs, Event{Kind: Attested, Stream: name, Tee: at.Tee, Evidence: at.Evidence})
	}
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
	if o.opt.RequireEvidence && !o.trusted(s) {
		if o.heldN+len(b) > maxHeld {
			return []Event{{Kind: Rejected, Stream: s.name, Reason: "record of a stream no evidence attests (yet): too many held"}}
		}
		s.waiting = append(s.waiting, b)
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
		if s := byName[n]; !s.closed && len(s.waiting) == 0 {
			evs = append(evs, Event{Kind: NotClosed, Stream: n, First: s.next})
		}
	}
	for _, n := range names {
		s := byName[n]
		switch {
		case o.opt.RequireEvidence && !o.trusted(s):
			evs = append(evs, Event{Kind: Rejected, Stream: n, Tee: s.tee,
				Reason: fmt.Sprintf("%s; its %d record(s) are not shown", o.untrusted(s), len(s.waiting))})
		case s.tee == "":
			evs = append(evs, Event{Kind: NotAttested, Stream: n})
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

// headerDigestOf is HeaderDigest of the line that carried header bytes b
// (strict base64url has one encoding, so the line is known exactly).
func headerDigestOf(b []byte) [32]byte {
	return sha256.Sum256(bytes.TrimSuffix(line(nil, HeaderPrefix, b), []byte("\n")))
}

// trusted reports whether a stream's records may be shown under
// RequireEvidence.
func (o *Opener) trusted(s *stream) bool {
	return s.tee != "" && (s.tee != attest.TeeSample || o.opt.AllowSample)
}

// untrusted says why a stream is not trusted.
func (o *Opener) untrusted(s *stream) string {
	if s.tee == attest.TeeSample {
		return "attested only by the sample attester (no TEE), which authenticates nothing"
	}
	return "no evidence from the agent attests this stream"
}

// attestation reads an attestation line: its evidence must carry the
// report data of the digests it names; each stream whose header is one of
// them is then attested, now or when its header arrives.
func (o *Opener) attestation(l []byte) []Event {
	at, ds, err := ParseAttestation(l)
	if err == nil {
		err = CheckAttestation(at, ds)
	}
	if err != nil {
		return []Event{{Kind: Rejected, Reason: "attestation: " + err.Error()}}
	}
	var evs []Event
	for _, d := range ds {
		if old, ok := o.attests[d]; ok && !(old.Tee == attest.TeeSample && at.Tee != attest.TeeSample) {
			// The copy sent after a repeated header, or the other
			// stream's. Sample evidence, which anyone can make, never
			// hides a TEE's that comes later.
			continue
		}
		if _, known := o.attests[d]; !known && len(o.attests) >= maxAttests {
			return append(evs, Event{Kind: Rejected, Reason: fmt.Sprintf("attestation: more than %d attested headers in the input", maxAttests)})
		}
		o.attests[d] = at
		if s, ok := o.byDigest[d]; ok && (s.tee == "" || s.tee == attest.TeeSample) {
			s.tee = at.Tee
			evs = append(evs, Event{Kind: Attested, Stream: s.name, Tee: at.Tee, Evidence: at.Evidence})
			if o.trusted(s) {
				waiting := s.waiting
				s.waiting = nil
				for _, rec := range waiting {
					o.heldN -= len(rec)
					evs = append(evs, o.record(rec)...)
				}
			}
		}
	}
	return evs
}
