package storage

import (
	"encoding/binary"
	"reflect"
	"testing"
)

// dmEntry lays out one struct dm_target_versions the way the kernel's
// list_version_get_info (drivers/md/dm-ioctl.c) does: next offset, three
// version words, the name and its NUL, padded to 8 bytes.
func dmEntry(name string, last bool) []byte {
	n := dmTargetHdrSize + len(name) + 1
	n = (n + 7) &^ 7
	b := make([]byte, n)
	if !last {
		binary.LittleEndian.PutUint32(b, uint32(n))
	}
	binary.LittleEndian.PutUint32(b[4:], 1)
	copy(b[dmTargetHdrSize:], name)
	return b
}

func TestParseDMTargets(t *testing.T) {
	var list []byte
	for _, n := range []string{"striped", "linear", "error", "crypt"} {
		list = append(list, dmEntry(n, false)...)
	}
	list = append(list, dmEntry("verity", true)...)
	got, err := parseDMTargets(list)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"striped": true, "linear": true, "error": true, "crypt": true, "verity": true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	// A kernel with dm-crypt but no dm-integrity: the list says so.
	if got["integrity"] {
		t.Fatal("integrity reported")
	}
	for name, bad := range map[string][]byte{
		"truncated": list[:10],
		"no NUL":    append(dmEntry("x", false)[:dmTargetHdrSize], 'a', 'b'),
		"next too small": func() []byte {
			b := dmEntry("crypt", false)
			binary.LittleEndian.PutUint32(b, 4)
			return append(b, dmEntry("x", true)...)
		}(),
		"next past end": func() []byte { b := dmEntry("crypt", false); binary.LittleEndian.PutUint32(b, 4096); return b }(),
	} {
		if _, err := parseDMTargets(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseDMTargets(f *testing.F) {
	f.Add(append(dmEntry("crypt", false), dmEntry("integrity", true)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseDMTargets(b)
		if err == nil && len(m) > maxDMTargets {
			t.Fatalf("%d targets", len(m))
		}
	})
}

// mke2fs 1.47.0 output for a 2 GiB disk with ext4Opts and -b 4096 -n.
const mkfsDryRun = `mke2fs 1.47.0 (5-Feb-2023)
128-byte inodes cannot handle dates beyond 2038 and are deprecated
Creating filesystem with 524288 4k blocks and 13312 inodes
Filesystem UUID: ac40f019-d8d3-4a42-94ca-3c1ed3cfab75
Superblock backups stored on blocks: 
	32768, 98304, 163840, 229376, 294912

`

func TestParseSuperblockBackups(t *testing.T) {
	got, err := parseSuperblockBackups(mkfsDryRun)
	if err != nil || !reflect.DeepEqual(got, []uint64{32768, 98304, 163840, 229376, 294912}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := parseSuperblockBackups("Creating filesystem with 8192 4k blocks and 224 inodes\n"); err != nil || len(got) != 0 {
		t.Fatalf("small file system: %v, %v", got, err)
	}
	for _, bad := range []string{
		"Superblock backups stored on blocks: \n\t32768, x\n\n",
		"Superblock backups stored on blocks: 99999999999999999999999\n",
		"Superblock backups stored on blocks: -1\n",
	} {
		if _, err := parseSuperblockBackups(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseSuperblockBackups(f *testing.F) {
	f.Add(mkfsDryRun)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseSuperblockBackups(s)
		if err == nil && len(b) > maxBackups {
			t.Fatalf("%d blocks", len(b))
		}
	})
}

func TestCryptKey(t *testing.T) {
	for opt, want := range map[string]bool{"encryption_key=ephemeral": true, "create_filesystem": false, "other": false} {
		if got, err := cryptKey(opt); err != nil || got != want {
			t.Errorf("%s: %v %v", opt, got, err)
		}
	}
}
