// Package eventlog is the agent's runtime measurement log in CoCo's AAEL
// format: each event "<domain> <operation> <content>" becomes a TCG2 event
// (EV_EVENT_TAG, tag "AAEL") hashed with SHA-384, appended to a file and, on
// TDX, extended into RTMR3 so a verifier can replay the log against the
// quote. The log travels as cc_eventlog in TDX evidence.
package eventlog

import (
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

const (
	// EvEventTag is the TCG event type of AAEL entries.
	EvEventTag = 0x6
	// AAELTag is the tagged-event id, "AAEL" as a little-endian u32.
	AAELTag = 0x4141454c
	// algSHA384 is the TCG algorithm id of SHA-384.
	algSHA384 = 0x000C
	// MeasurementRegister is the CC measurement register the entries name:
	// 4, i.e. RTMR3 (CoCo maps its default PCR 17 there).
	MeasurementRegister = 4
	// RTMRIndex is the TDX RTMR that register is.
	RTMRIndex = MeasurementRegister - 1
	// maxEvent bounds one event's text.
	maxEvent = 64 << 10
)

// Well-known domains and operations the agent records.
const (
	DomainCoCo      = "github.com/confidential-containers"
	OpPullImage     = "PullImage"
	DomainCocoon    = "github.com/cocoon-tee/cocoon"
	OpLoadPolicy    = "LoadPolicy"
	OpSetPolicy     = "SetPolicy"
	OpDecisionsHead = "PolicyDecisionLogHead"
	// OpInitdata records that the agent started without initdata (content
	// InitdataNone): the pod runs under the image's default policy and
	// settings, which a verifier must see rather than infer.
	OpInitdata   = "Initdata"
	InitdataNone = "none"
)

// Extender extends a digest into a hardware measurement register.
type Extender interface {
	Extend(digest []byte) error
}

// Log is an append-only AAEL file, optionally mirrored into an RTMR.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	path string
	ext  Extender
}

// Open opens (creating if needed) the log at path. ext may be nil when the
// platform has no runtime measurement register; the log is kept anyway.
func Open(path string, ext Extender) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("eventlog: %w", err)
	}
	return &Log{f: f, path: path, ext: ext}, nil
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }

func checkToken(what, s string) error {
	if s == "" || strings.ContainsAny(s, " \n\r") {
		return fmt.Errorf("eventlog: %s %q must be non-empty without spaces or newlines", what, s)
	}
	return nil
}

// Encode builds the TCG2 entry for one event and returns it with the
// digest extended into the register.
func Encode(domain, operation, content string) (entry, digest []byte, err error) {
	if err := checkToken("domain", domain); err != nil {
		return nil, nil, err
	}
	if err := checkToken("operation", operation); err != nil {
		return nil, nil, err
	}
	if strings.ContainsAny(content, "\n\r") {
		return nil, nil, errors.New("eventlog: content must not contain newlines")
	}
	text := domain + " " + operation + " " + content
	if len(text) > maxEvent {
		return nil, nil, fmt.Errorf("eventlog: event is %d bytes, limit %d", len(text), maxEvent)
	}
	tagged := binary.LittleEndian.AppendUint32(nil, AAELTag)
	tagged = binary.LittleEndian.AppendUint32(tagged, uint32(len(text)))
	tagged = append(tagged, text...)
	sum := sha512.Sum384(tagged)

	e := binary.LittleEndian.AppendUint32(nil, MeasurementRegister)
	e = binary.LittleEndian.AppendUint32(e, EvEventTag)
	e = binary.LittleEndian.AppendUint32(e, 1) // one digest
	e = binary.LittleEndian.AppendUint16(e, algSHA384)
	e = append(e, sum[:]...)
	e = binary.LittleEndian.AppendUint32(e, uint32(len(tagged)))
	e = append(e, tagged...)
	return e, sum[:], nil
}

// Record measures one event. The register is extended before the entry is
// written: a crash between the two leaves the register ahead of the log,
// which a verifier detects, rather than a logged event that was never
// measured.
func (l *Log) Record(domain, operation, content string) error {
	entry, digest, err := Encode(domain, operation, content)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ext != nil {
		if err := l.ext.Extend(digest); err != nil {
			return fmt.Errorf("eventlog: extend RTMR%d: %w", RTMRIndex, err)
		}
	}
	if _, err := l.f.Write(entry); err != nil {
		return fmt.Errorf("eventlog: write: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("eventlog: sync: %w", err)
	}
	return nil
}

// Entries returns the raw AAEL entries recorded so far.
func (l *Log) Entries() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return os.ReadFile(l.path)
}
