package storage

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	cases := []struct {
		in        []string
		flags     uintptr
		prop      uintptr
		data      string
		fsgid     int64
		mode      int64
		errSubstr string
	}{
		{in: nil, data: "", fsgid: -1, mode: -1},
		{in: []string{"ro", "nosuid", "nodev", "noexec"}, flags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, fsgid: -1, mode: -1},
		{in: []string{"ro,nosuid", "rw"}, flags: unix.MS_NOSUID, fsgid: -1, mode: -1},
		{in: []string{"rbind", "rprivate"}, flags: unix.MS_BIND | unix.MS_REC, prop: unix.MS_PRIVATE | unix.MS_REC, fsgid: -1, mode: -1},
		{in: []string{"mode=1777", "size=64m", "nr_inodes=10k"}, data: "mode=1777,size=64m,nr_inodes=10k", fsgid: -1, mode: 0o1777},
		{in: []string{"fsgid=1000", "size=50%"}, data: "size=50%", fsgid: 1000, mode: -1},
		{in: []string{"lowerdir=/a:/b", "io.katacontainers.fs-opt.overlay-rw"}, data: "lowerdir=/a:/b", fsgid: -1, mode: -1},
		{in: []string{"remount"}, errSubstr: "refused"},
		{in: []string{"loop"}, errSubstr: "refused"},
		{in: []string{"mode=888"}, errSubstr: "mode="},
		{in: []string{"mode=17777"}, errSubstr: "mode="},
		{in: []string{"size="}, errSubstr: "size="},
		{in: []string{"size=1q"}, errSubstr: "size="},
		{in: []string{"fsgid=-1"}, errSubstr: "fsgid="},
		{in: []string{"fsgid"}, errSubstr: "fsgid="},
		{in: []string{"a\x00b"}, errSubstr: "NUL"},
		{in: []string{strings.Repeat("x", 5000)}, errSubstr: "longer than"},
	}
	for _, tc := range cases {
		o, err := ParseOptions(tc.in)
		if tc.errSubstr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errSubstr) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.errSubstr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if o.Flags != tc.flags || o.Propagation != tc.prop || o.DataString() != tc.data || o.FSGid != tc.fsgid || o.Mode != tc.mode {
			t.Errorf("%q: got flags %#x prop %#x data %q fsgid %d mode %o", tc.in, o.Flags, o.Propagation, o.DataString(), o.FSGid, o.Mode)
		}
	}
}

func FuzzParseOptions(f *testing.F) {
	f.Add("ro,nosuid", "size=64m", "mode=1777")
	f.Add("fsgid=5", "lowerdir=/a:/b", "io.katacontainers.fs-opt.overlay-rw")
	f.Add("rbind", "rslave", "remount")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		o, err := ParseOptions([]string{a, b, c})
		if err != nil {
			return
		}
		if len(o.DataString()) > maxMountData {
			t.Fatalf("data of %d bytes accepted", len(o.DataString()))
		}
		if strings.ContainsRune(o.DataString(), 0) {
			t.Fatal("NUL in mount data")
		}
		for _, d := range o.Data {
			if strings.HasPrefix(d, "fsgid=") || strings.HasPrefix(d, "io.katacontainers.") {
				t.Fatalf("agent-only option %q reached the kernel data", d)
			}
		}
		if o.Mode > 0o7777 {
			t.Fatalf("mode %o accepted", o.Mode)
		}
	})
}
