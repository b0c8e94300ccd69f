package eventlog_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/fakertmr"
	"github.com/google/go-configfs-tsm/rtmr"

	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
)

// The RTMR is go-configfs-tsm's fake configfs-tsm rtmr subsystem (no TDX
// here): it extends a file-backed register exactly as the kernel would.
func TestRecordExtendsRTMR(t *testing.T) {
	dir := t.TempDir()
	fake := fakertmr.CreateRtmrSubsystem(t.TempDir())
	l, err := eventlog.Open(filepath.Join(dir, "aael"), eventlog.ConfigfsRTMR{Client: fake, Index: eventlog.RTMRIndex})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	recs := [][3]string{
		{eventlog.DomainCoCo, eventlog.OpPullImage, "docker.io/library/busybox@sha256:abc"},
		{eventlog.DomainCocoon, eventlog.OpSetPolicy, "sha256:0123"},
		{eventlog.DomainCocoon, eventlog.OpLoadPolicy, ""},
	}
	for _, r := range recs {
		if err := l.Record(r[0], r[1], r[2]); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	evs, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0].Content != recs[0][2] || evs[1].Operation != "SetPolicy" || evs[2].Content != "" || evs[0].Register != 4 {
		t.Fatalf("events %+v", evs)
	}
	got, err := rtmr.GetDigest(fake, eventlog.RTMRIndex)
	if err != nil {
		t.Fatal(err)
	}
	if want := eventlog.Replay(evs); !bytes.Equal(got.Digest, want) {
		t.Fatalf("RTMR3 %x, replayed log %x", got.Digest, want)
	}
	cc, err := eventlog.CCEventLog(filepath.Join(dir, "no-ccel"), l)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(cc, bytes.Repeat([]byte{0xff}, 8)) || !bytes.Contains(cc, raw) || !bytes.Contains(cc, []byte("Spec ID Event03")) {
		t.Fatalf("cc_eventlog layout wrong (%d bytes)", len(cc))
	}
	// Firmware CCEL present: it is trimmed and prefixes the entries.
	ccel := fakeCCEL()
	padded := append(append([]byte(nil), ccel...), bytes.Repeat([]byte{0xff}, 64)...)
	if err := os.WriteFile(filepath.Join(dir, "CCEL"), padded, 0o600); err != nil {
		t.Fatal(err)
	}
	cc, err = eventlog.CCEventLog(filepath.Join(dir, "CCEL"), l)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(cc, ccel) || !bytes.Equal(cc[len(ccel):len(ccel)+len(raw)], raw) {
		t.Fatal("CCEL not trimmed before the AAEL entries")
	}
}

func TestSysfsRTMR(t *testing.T) {
	dir := t.TempDir()
	s := eventlog.SysfsRTMR{Dir: dir, Index: 3}
	if err := s.Extend(make([]byte, 48)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rtmr3:sha384")); err != nil {
		t.Fatal(err)
	}
	if err := s.Extend(make([]byte, 32)); err == nil {
		t.Fatal("32-byte digest accepted")
	}
}

func TestRecordRejects(t *testing.T) {
	l, err := eventlog.Open(filepath.Join(t.TempDir(), "aael"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, r := range [][3]string{{"", "op", "c"}, {"a b", "op", "c"}, {"d", "", "c"}, {"d", "o p", "c"}, {"d", "op", "line\nbreak"}, {"d", "op", string(make([]byte, 70000))}} {
		if err := l.Record(r[0], r[1], r[2]); err == nil {
			t.Errorf("Record(%q) accepted", r)
		}
	}
	if raw, _ := l.Entries(); len(raw) != 0 {
		t.Fatal("rejected events were written")
	}
}

// fakeCCEL builds a minimal firmware log: Spec ID event plus one SHA-384 event.
func fakeCCEL() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0)
	b = binary.LittleEndian.AppendUint32(b, 3)
	b = append(b, make([]byte, 20)...)
	spec := make([]byte, 33)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(spec)))
	b = append(b, spec...)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint32(b, 0x80000008)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 0x0C)
	b = append(b, make([]byte, 48)...)
	b = binary.LittleEndian.AppendUint32(b, 4)
	return append(b, 1, 2, 3, 4)
}

func FuzzParse(f *testing.F) {
	e, _, _ := eventlog.Encode("d", "o", "c")
	f.Add(e)
	f.Add(fakeCCEL())
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = eventlog.Parse(b)
		if out, err := eventlog.TrimCCEL(b); err == nil && len(out) > len(b) {
			t.Fatal("trimmed log longer than input")
		}
	})
}
