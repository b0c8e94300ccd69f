package storage

import (
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
)

// The table Kata's agent builds for containerd's layers (kata-types
// dmverity.rs): hash start one block past the offset, for the superblock.
func TestVerityTable(t *testing.T) {
	lo, err := erofs.ParseOptions(kataLayer(2, hashA, "/x").Options)
	if err != nil {
		t.Fatal(err)
	}
	sectors, params := verityTable(unix.Mkdev(254, 18), lo.Verity)
	want := "1 254:18 254:18 4096 4096 257 258 sha256 " + hashA + " " + strings.Repeat("0", 64)
	if sectors != 257*8 || params != want {
		t.Fatalf("table %d %q, want %d %q", sectors, params, 257*8, want)
	}
	lo.Verity.Salt = nil
	if _, params := verityTable(unix.Mkdev(8, 1), lo.Verity); !strings.HasSuffix(params, hashA+" -") {
		t.Fatalf("no salt: %q", params)
	}
}

func TestDMTargetLayout(t *testing.T) {
	b := dmTarget(2056, "verity", "1 2 3")
	if len(b)%8 != 0 || len(b) < dmTargetSpec+6 {
		t.Fatalf("spec of %d bytes", len(b))
	}
	if binary.LittleEndian.Uint64(b[0:]) != 0 || binary.LittleEndian.Uint64(b[8:]) != 2056 ||
		string(b[24:30]) != "verity" || b[30] != 0 || string(b[dmTargetSpec:dmTargetSpec+5]) != "1 2 3" || b[dmTargetSpec+5] != 0 {
		t.Fatalf("spec %x", b)
	}
}

// statusReply is a DM_TABLE_STATUS reply with one target and status s.
func statusReply(s string) []byte {
	buf := make([]byte, dmIoctlSize+dmTargetSpec+8)
	le := binary.LittleEndian
	le.PutUint32(buf[12:], uint32(dmIoctlSize+dmTargetSpec+len(s)+1))
	le.PutUint32(buf[16:], dmIoctlSize)
	le.PutUint32(buf[20:], 1)
	copy(buf[dmIoctlSize+dmTargetSpec:], s)
	return buf
}

func TestParseDMStatus(t *testing.T) {
	for _, s := range []string{"V", "C"} {
		if got, err := parseDMStatus(statusReply(s)); err != nil || got != s {
			t.Fatalf("%q: %q %v", s, got, err)
		}
	}
	bad := statusReply("V")
	binary.LittleEndian.PutUint32(bad[12:], 1<<20)
	if _, err := parseDMStatus(bad); err == nil {
		t.Fatal("data area past the reply accepted")
	}
	none := statusReply("V")
	binary.LittleEndian.PutUint32(none[20:], 0)
	if _, err := parseDMStatus(none); err == nil {
		t.Fatal("a device without a table has no status")
	}
}

func FuzzParseDMStatus(f *testing.F) {
	f.Add(statusReply("V"))
	f.Add(statusReply("C"))
	f.Add(make([]byte, dmIoctlSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseDMStatus(b)
		if err == nil && len(s) > len(b) {
			t.Fatalf("status longer than the reply")
		}
	})
}
