package storage

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// verityErrMsg is the uevent dm-verity's verity_handle_err sends for the
// mapped disk dm-<minor> (254:<minor>): kobject_uevent_env's header and
// ACTION, DEVPATH, SUBSYSTEM, then the caller's DM_VERITY_ERR_BLOCK_NR,
// then dev_uevent's MAJOR, MINOR, DEVNAME, the device type's DEVTYPE and
// the disk's DISKSEQ, SEQNUM last (lib/kobject_uevent.c,
// drivers/base/core.c dev_uevent, block/genhd.c disk_uevent).
func verityErrMsg(minor int, value string) []byte {
	dev := fmt.Sprintf("dm-%d", minor)
	return []byte(strings.Join([]string{
		"change@/devices/virtual/block/" + dev, "ACTION=change", "DEVPATH=/devices/virtual/block/" + dev,
		"SUBSYSTEM=block", verityErrVar + "=" + value, "MAJOR=254", fmt.Sprintf("MINOR=%d", minor),
		"DEVNAME=" + dev, "DEVTYPE=disk", "DISKSEQ=17", "SEQNUM=4242",
	}, "\x00") + "\x00")
}

func TestParseUevent(t *testing.T) {
	ev, err := parseUevent(verityErrMsg(3, "0,4"))
	if err != nil {
		t.Fatal(err)
	}
	if dev, ok := ev.device(); ev.action != "change" || !ok || dev != unix.Mkdev(254, 3) || ev.env[verityErrVar] != "0,4" {
		t.Fatalf("parsed %+v", ev)
	}
	for _, bad := range []string{"", "change", "change@/x\x00ACTION=add\x00", "remove@/x\x00ACTION=remove\x00NOEQUALS\x00", strings.Repeat("a", 3000)} {
		if _, err := parseUevent([]byte(bad)); err == nil {
			t.Errorf("%.40q accepted", bad)
		}
	}
	if _, ok := (uevent{env: map[string]string{"MAJOR": "8"}}).device(); ok {
		t.Error("an event without MINOR names a device")
	}
}

func TestParseVerityErr(t *testing.T) {
	for in, want := range map[string]string{"0,4": "data 4", "1,258": "hash 258"} {
		kind, block, err := parseVerityErr(in)
		if err != nil || fmt.Sprintf("%s %d", kind, block) != want {
			t.Errorf("%q: %s %d %v, want %s", in, kind, block, err, want)
		}
	}
	for _, bad := range []string{"", "4", "2,4", "0,", "0,-1", "0,x"} {
		if _, _, err := parseVerityErr(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseUevent(f *testing.F) {
	f.Add(verityErrMsg(3, "1,258"))
	f.Add([]byte("remove@/devices/virtual/block/loop9\x00ACTION=remove\x00MAJOR=7\x00MINOR=9\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := parseUevent(b)
		if err != nil {
			return
		}
		ev.device()
		if v, ok := ev.env[verityErrVar]; ok {
			parseVerityErr(v)
		}
	})
}

// watchedLayer is a layer as the group's watch knows it, on made-up
// device numbers.
func watchedLayer(dev, under uint64) *verityDevice {
	return &verityDevice{name: "cocoon-verity-test", layer: "container c layer 1 (02 partition 1)", hash: strings.Repeat("ab", 32),
		path: "/dev/dm-3", part: "/dev/vdb1", dev: dev, under: under}
}

// The kernel's corruption event is logged once, with the layer, its root
// hash and the block; events about other devices are not.
func TestVerityWatchCorruptionEvent(t *testing.T) {
	recs := make(testenv.LogRecords, 16)
	w := &verityWatch{log: slog.New(slog.NewJSONHandler(recs, nil)), incidents: &LayerIncidents{}, byDev: map[uint64]*verityDevice{}, under: map[uint64]*verityDevice{}}
	v := watchedLayer(unix.Mkdev(254, 3), unix.Mkdev(254, 49))
	w.add(v)
	for _, msg := range [][]byte{
		verityErrMsg(4, "0,4"), // another mapping
		[]byte("change@/devices/virtual/block/dm-3\x00ACTION=change\x00MAJOR=254\x00MINOR=3\x00"), // no verity error
		verityErrMsg(3, "1,258"),
		verityErrMsg(3, "0,5"),
	} {
		ev, err := parseUevent(msg)
		if err != nil {
			t.Fatal(err)
		}
		w.handle(ev)
	}
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := <-recs
	if r["msg"] != "dm-verity detected corruption" || r["root_hash"] != v.hash || r["layer"] != v.layer ||
		r["block_type"] != "hash" || r["block"] != float64(258) || r["dev"] != "/dev/dm-3" ||
		!strings.Contains(fmt.Sprint(r["error"]), "hash block 258 of erofs layer "+v.layer+" failed verification against root hash "+v.hash) {
		t.Fatalf("record %v", r)
	}
	if n := v.corruptions.Load(); n != 2 {
		t.Fatalf("%d corruptions counted, want 2", n)
	}
}

// loop-control's ioctls (include/uapi/linux/loop.h).
const (
	loopCtlAdd    = 0x4C80
	loopCtlRemove = 0x4C81
)

// TestVerityWatchDeviceRemoved removes, through the real kernel, a block
// device standing for the disk under a layer's mapping (a loop device this
// test adds under a random number) and waits for the watch to report it:
// the kernel's remove uevent is what a hot-unplugged virtio disk sends.
func TestVerityWatchDeviceRemoved(t *testing.T) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("loop devices: %v", err)
	}
	defer ctl.Close()
	var rnd [2]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	n := 4096 + int(binary.LittleEndian.Uint16(rnd[:])%60000)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), loopCtlAdd, uintptr(n)); errno != 0 {
		t.Fatalf("LOOP_CTL_ADD %d: %v", n, errno)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), loopCtlRemove, uintptr(n))
		}
	})
	numbers, err := os.ReadFile(filepath.Join("/sys/class/block", fmt.Sprintf("loop%d", n), "dev"))
	if err != nil {
		t.Fatal(err)
	}
	var maj, mnr uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(numbers)), "%d:%d", &maj, &mnr); err != nil {
		t.Fatal(err)
	}

	recs := make(testenv.LogRecords, 64)
	w, err := watchVerity(slog.New(slog.NewJSONHandler(recs, nil)), &LayerIncidents{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	v := watchedLayer(unix.Mkdev(254, 4000), unix.Mkdev(maj, mnr))
	w.add(v)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), loopCtlRemove, uintptr(n)); errno != 0 {
		t.Fatalf("LOOP_CTL_REMOVE %d: %v", n, errno)
	}
	removed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := recs.Wait(t, ctx, "erofs layer device removed while mounted: reads of this layer now fail with EIO")
	if r["layer"] != v.layer || r["root_hash"] != v.hash || r["device"] != v.part || !v.removed.Load() ||
		!strings.Contains(fmt.Sprint(r["error"]), v.part+", the device of erofs layer "+v.layer+" (root hash "+v.hash+"), was removed") {
		t.Fatalf("record %v", r)
	}
}

// close returns promptly with the reader blocked in the poller.
func TestVerityWatchClose(t *testing.T) {
	w, err := watchVerity(slog.New(slog.DiscardHandler), &LayerIncidents{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { w.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not stop the reader")
	}
}
