package eventlog

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Event is one parsed AAEL entry.
type Event struct {
	Register                   uint32
	Digest                     []byte
	Domain, Operation, Content string
}

// Parse reads AAEL entries (as Log writes them) and checks every digest.
func Parse(b []byte) ([]Event, error) {
	var out []Event
	for i := 0; i < len(b); {
		if len(b)-i < 4+4+4+2+48+4 {
			return nil, fmt.Errorf("eventlog: truncated entry at %d", i)
		}
		reg := binary.LittleEndian.Uint32(b[i:])
		typ := binary.LittleEndian.Uint32(b[i+4:])
		cnt := binary.LittleEndian.Uint32(b[i+8:])
		alg := binary.LittleEndian.Uint16(b[i+12:])
		if typ != EvEventTag || cnt != 1 || alg != algSHA384 {
			return nil, fmt.Errorf("eventlog: entry at %d is not an AAEL SHA-384 event", i)
		}
		digest := b[i+14 : i+14+48]
		i += 14 + 48
		n := int(binary.LittleEndian.Uint32(b[i:]))
		i += 4
		if n < 8 || n > len(b)-i {
			return nil, fmt.Errorf("eventlog: bad event size %d", n)
		}
		data := b[i : i+n]
		i += n
		if sum := sha512.Sum384(data); !bytes.Equal(sum[:], digest) {
			return nil, errors.New("eventlog: digest does not match event data")
		}
		if binary.LittleEndian.Uint32(data) != AAELTag || int(binary.LittleEndian.Uint32(data[4:])) != n-8 {
			return nil, errors.New("eventlog: event is not an AAEL tagged event")
		}
		parts := strings.SplitN(string(data[8:]), " ", 3)
		if len(parts) != 3 {
			return nil, errors.New("eventlog: event text is not \"<domain> <operation> <content>\"")
		}
		out = append(out, Event{Register: reg, Digest: append([]byte(nil), digest...), Domain: parts[0], Operation: parts[1], Content: parts[2]})
	}
	return out, nil
}

// Replay computes the register value the events extend an all-zero RTMR to.
func Replay(events []Event) []byte {
	reg := make([]byte, 48)
	for _, e := range events {
		h := sha512.New384()
		h.Write(reg)
		h.Write(e.Digest)
		reg = h.Sum(nil)
	}
	return reg
}
