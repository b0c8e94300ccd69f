package sealedlog

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// End-to-end encrypted exec I/O. An exec grant may carry an ephemeral
// owner key; the exec's output is then sealed to it as ordinary sealed
// streams and its input travels the other way as a sealed stream to an
// ephemeral key of the agent's. Everything is sealed lines, so the whole
// session runs over `kubectl exec -i` as a plain byte pipe:
//
//	agent stdout: a stream labelled "<prefix>/stdin-key" whose one record is
//	              the agent's X25519 public key (32 bytes, base64url
//	              without padding, no newline), then the
//	              exec's stdout stream "<prefix>/stdout"
//	agent stderr: the exec's stderr stream "<prefix>/stderr"
//	owner stdin:  a stream labelled "stdin" sealed to the agent's key;
//	              its final record ends the exec's stdin
//
// The agent's key reaches only the holder of the grant's private key, so
// only it can write stdin the agent accepts. The agent's stdin side is
// strict where a log reader is lenient: one stream, records in order
// from 0, every line sealed; anything else ends the session.

const (
	// ExecKeySuffix, ExecStdoutSuffix and ExecStderrSuffix end the labels
	// of an exec session's streams.
	ExecKeySuffix    = "/stdin-key"
	ExecStdoutSuffix = "/stdout"
	ExecStderrSuffix = "/stderr"
	// ExecStdinLabel labels the owner's stdin stream.
	ExecStdinLabel = "stdin"
)

// ErrExecSession is wrapped by every error that ends an encrypted exec
// session: input or output the host changed, reordered, replayed or cut.
var ErrExecSession = errors.New("encrypted exec session")

func sessionErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrExecSession, fmt.Sprintf(format, a...))
}

// ExecAgent is the agent's half of an encrypted exec session.
type ExecAgent struct {
	// Preamble is the sealed lines announcing the agent's stdin key; they
	// go out on stdout before anything else.
	Preamble []byte
	// Stdout and Stderr seal the exec's output to the owner.
	Stdout, Stderr *Sealer
	// Stdin opens what the owner sends.
	Stdin *StdinOpener
}

// NewExecAgent starts a session for the grant's key owner. prefix names
// the exec in labels (the host sees them), e.g. "<container id>/<exec id>".
func NewExecAgent(owner *ecdh.PublicKey, prefix string) (*ExecAgent, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sealedlog: %w", err)
	}
	keyStream, err := NewSealer(owner, prefix+ExecKeySuffix, Options{})
	if err != nil {
		return nil, err
	}
	// The key as one text line, so it is one record whatever its bytes
	// (a raw key may hold a newline, where the sealer cuts records).
	pre, err := keyStream.Write(base64.RawURLEncoding.AppendEncode(nil, priv.PublicKey().Bytes()))
	if err != nil {
		return nil, err
	}
	pre = append(pre, keyStream.Close()...)
	x := &ExecAgent{Preamble: pre}
	if x.Stdout, err = NewSealer(owner, prefix+ExecStdoutSuffix, Options{}); err != nil {
		return nil, err
	}
	if x.Stderr, err = NewSealer(owner, prefix+ExecStderrSuffix, Options{}); err != nil {
		return nil, err
	}
	if x.Stdin, err = newStdinOpener(priv); err != nil {
		return nil, err
	}
	return x, nil
}

// StdinOpener turns the sealed stdin the host relays, in chunks of any
// size, into the owner's plaintext. Its first error ends the session and
// is returned again by every later call. It is not safe for concurrent
// use.
type StdinOpener struct {
	o      *Opener
	buf    []byte
	stream string
	done   bool
	err    error
}

func newStdinOpener(priv *ecdh.PrivateKey) (*StdinOpener, error) {
	o, err := NewOpener(priv)
	if err != nil {
		return nil, err
	}
	return &StdinOpener{o: o}, nil
}

// Write takes the next bytes of sealed stdin and returns the plaintext now
// ready and whether the owner ended stdin (its final record arrived).
func (s *StdinOpener) Write(p []byte) (plain []byte, eof bool, err error) {
	if s.err != nil {
		return nil, s.done, s.err
	}
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			break
		}
		l := s.buf[:i]
		out, err := s.line(l)
		plain = append(plain, out...)
		if err != nil {
			s.err = err
			return plain, s.done, err
		}
		s.buf = s.buf[i+1:]
	}
	if len(s.buf) > maxLine {
		s.err = sessionErr("stdin line longer than %d bytes", maxLine)
		return plain, s.done, s.err
	}
	if len(s.buf) == 0 {
		s.buf = nil // do not keep a large buffer alive
	}
	return plain, s.done, nil
}

// Close is called when the host closes stdin: an error unless the owner's
// final record came first, since a cut input (a script without its end)
// must not reach the command as a clean end of file.
func (s *StdinOpener) Close() error {
	if s.err != nil {
		return s.err
	}
	if !s.done {
		s.err = sessionErr("stdin closed before the owner's final record (cut by the host)")
	}
	return s.err
}

func (s *StdinOpener) line(l []byte) ([]byte, error) {
	l = bytes.TrimSuffix(l, []byte("\r"))
	if !bytes.HasPrefix(l, []byte(linePrefix)) {
		return nil, sessionErr("stdin line is not sealed")
	}
	if s.done {
		return nil, sessionErr("stdin line after the owner's final record")
	}
	var plain []byte
	for _, e := range s.o.Line(l) {
		switch {
		case e.Kind == NewStream && s.stream == "":
			s.stream = e.Stream
		case (e.Kind == Data || e.Kind == Closed || e.Kind == NewStream) && e.Stream != s.stream:
			return plain, sessionErr("stdin: a second stream %s", e.Stream)
		case e.Kind == Data:
			plain = append(plain, e.Data...)
		case e.Kind == Closed:
			s.done = true
		default:
			return plain, sessionErr("stdin: %s", describe(e))
		}
	}
	return plain, nil
}

// describe says what an event reports, for session errors.
func describe(e Event) string {
	switch e.Kind {
	case StartsLate, Missing:
		return fmt.Sprintf("records %d to %d are missing (dropped or reordered)", e.First, e.Last)
	case Late:
		return fmt.Sprintf("record %d arrived late (reordered)", e.First)
	case Replayed:
		return fmt.Sprintf("record %d replayed", e.First)
	case Rejected:
		return "rejected: " + e.Reason
	case NotClosed:
		return fmt.Sprintf("ends without its final record (after record %d)", e.First)
	case Unsealed:
		return "a line that is not sealed"
	case NewStream:
		return "a second stream"
	}
	return fmt.Sprintf("unexpected event %d", e.Kind)
}

// ExecOwner is the owner's half: it opens the exec's output with the
// grant's private key, learns the agent's stdin key from it, and seals
// stdin. Only the streams of one session are accepted: one key stream, one
// stdout and one stderr stream, all with the key stream's prefix. It is
// not safe for concurrent use.
type ExecOwner struct {
	o        *Opener
	prefix   string
	roles    map[string]string // stream name -> suffix
	agentKey *ecdh.PublicKey
}

// NewExecOwner opens sessions granted with priv's public key.
func NewExecOwner(priv *ecdh.PrivateKey) (*ExecOwner, error) {
	o, err := NewOpener(priv)
	if err != nil {
		return nil, err
	}
	return &ExecOwner{o: o, roles: map[string]string{}}, nil
}

// ExecOutput is plaintext of the exec's stdout or stderr.
type ExecOutput struct {
	Stderr bool
	Data   []byte
}

// Line reads one sealed line of the exec's output (from either pipe) and
// returns the plaintext it carries. An error ends the session. Unsealed
// lines are reported by unsealed = true and not shown.
func (x *ExecOwner) Line(l []byte) (out []ExecOutput, unsealed bool, err error) {
	for _, e := range x.o.Line(l) {
		switch e.Kind {
		case Unsealed:
			unsealed = true
		case NewStream:
			if err := x.newStream(e.Stream); err != nil {
				return out, unsealed, err
			}
		case Data:
			role := x.roles[e.Stream]
			if role == ExecKeySuffix {
				if x.agentKey != nil {
					return out, unsealed, sessionErr("a second agent key")
				}
				raw, err := base64.RawURLEncoding.Strict().DecodeString(string(e.Data))
				if err != nil {
					return out, unsealed, sessionErr("agent key: %v", err)
				}
				k, err := ecdh.X25519().NewPublicKey(raw)
				if err != nil {
					return out, unsealed, sessionErr("agent key: %v", err)
				}
				x.agentKey = k
				continue
			}
			out = append(out, ExecOutput{Stderr: role == ExecStderrSuffix, Data: e.Data})
		case Closed:
			if x.roles[e.Stream] == ExecKeySuffix && x.agentKey == nil {
				return out, unsealed, sessionErr("the agent key stream is empty")
			}
		case Attested:
			// A session's streams are bound by its announcement
			// (execgrant), not by attestation lines.
		default:
			return out, unsealed, sessionErr("output stream %s: %s", e.Stream, describe(e))
		}
	}
	return out, unsealed, nil
}

// newStream admits a stream of this session, by its label.
func (x *ExecOwner) newStream(name string) error {
	label := name[:strings.LastIndexByte(name, '#')]
	for _, suf := range []string{ExecKeySuffix, ExecStdoutSuffix, ExecStderrSuffix} {
		prefix, ok := strings.CutSuffix(label, suf)
		if !ok {
			continue
		}
		if len(x.roles) == 0 {
			x.prefix = prefix
		}
		if prefix != x.prefix {
			return sessionErr("stream %s belongs to another exec", name)
		}
		for n, r := range x.roles {
			if r == suf {
				return sessionErr("a second %s stream %s (first %s)", suf[1:], name, n)
			}
		}
		x.roles[name] = suf
		return nil
	}
	return sessionErr("stream %s is not part of an exec session", name)
}

// AgentKey is the agent's stdin key once its stream has been read.
func (x *ExecOwner) AgentKey() *ecdh.PublicKey { return x.agentKey }

// End reports streams the output ended without closing.
func (x *ExecOwner) End() error {
	for _, e := range x.o.End() {
		if e.Kind == NotAttested {
			continue // bound by the session's announcement instead
		}
		return sessionErr("output stream %s: %s", e.Stream, describe(e))
	}
	return nil
}

// NewStdinSealer seals the owner's stdin to the agent's key; flush after
// every write so typed input is sent at once.
func NewStdinSealer(agentKey *ecdh.PublicKey) (*Sealer, error) {
	return NewSealer(agentKey, ExecStdinLabel, Options{})
}
