package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// CCELPath is where firmware publishes the boot-time CC event log (ACPI CCEL).
const CCELPath = "/sys/firmware/acpi/tables/data/CCEL"

// endMarker terminates the combined log.
var endMarker = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// specIDHeader is a TCG "Spec ID Event03" EV_NO_ACTION entry declaring
// SHA-384 digests; it starts the log when firmware provided no CCEL.
func specIDHeader() []byte {
	ev := append([]byte("Spec ID Event03"), 0)
	ev = binary.LittleEndian.AppendUint32(ev, 0) // platform class
	ev = append(ev, 0, 2, 0, 2)                  // spec minor, major, errata, uintn size
	ev = binary.LittleEndian.AppendUint32(ev, 1) // one algorithm
	ev = binary.LittleEndian.AppendUint16(ev, algSHA384)
	ev = binary.LittleEndian.AppendUint16(ev, 48)
	ev = append(ev, 0) // no vendor info
	h := binary.LittleEndian.AppendUint32(nil, 0)
	h = binary.LittleEndian.AppendUint32(h, 3) // EV_NO_ACTION
	h = append(h, make([]byte, 20)...)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(ev)))
	return append(h, ev...)
}

// digestSize maps TCG algorithm ids to digest lengths.
var digestSize = map[uint16]int{0x0B: 32, 0x0C: 48, 0x0D: 64, 0x12: 32}

// TrimCCEL cuts the firmware log at its end: the ACPI table is padded
// (0xff or 0x00) after the last event.
func TrimCCEL(b []byte) ([]byte, error) {
	u32 := func(i int) (uint32, error) {
		if i < 0 || i+4 > len(b) {
			return 0, errors.New("ccel: truncated")
		}
		return binary.LittleEndian.Uint32(b[i:]), nil
	}
	// First entry: the SHA-1-format Spec ID event.
	if _, err := u32(4); err != nil {
		return nil, err
	}
	n, err := u32(4 + 4 + 20)
	if err != nil {
		return nil, err
	}
	i := 32 + int(n)
	for steps := 0; ; steps++ {
		if steps > 1<<20 || i+8 > len(b) {
			return nil, errors.New("ccel: no end of log")
		}
		stop := binary.LittleEndian.Uint64(b[i:])
		if stop == 0 || stop == ^uint64(0) {
			return b[:i], nil
		}
		count, err := u32(i + 8)
		if err != nil {
			return nil, err
		}
		i += 12
		for k := uint32(0); k < count; k++ {
			if i+2 > len(b) {
				return nil, errors.New("ccel: truncated digest")
			}
			sz, ok := digestSize[binary.LittleEndian.Uint16(b[i:])]
			if !ok {
				return nil, fmt.Errorf("ccel: unknown digest algorithm %#x", binary.LittleEndian.Uint16(b[i:]))
			}
			i += 2 + sz
		}
		es, err := u32(i)
		if err != nil {
			return nil, err
		}
		if int(es) > len(b) {
			return nil, errors.New("ccel: event larger than log")
		}
		i += 4 + int(es)
	}
}

// CCEventLog is the cc_eventlog of TDX evidence: the firmware CCEL (trimmed)
// or a Spec ID header, then the agent's AAEL entries, then an end marker.
// It returns nil when there is neither.
func CCEventLog(ccelPath string, l *Log) ([]byte, error) {
	var out []byte
	if b, err := os.ReadFile(ccelPath); err == nil {
		if out, err = TrimCCEL(b); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read CCEL: %w", err)
	}
	var entries []byte
	if l != nil {
		var err error
		if entries, err = l.Entries(); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 && len(entries) == 0 {
		return nil, nil
	}
	if len(out) == 0 {
		out = specIDHeader()
	}
	out = append(out, entries...)
	return append(out, endMarker...), nil
}
