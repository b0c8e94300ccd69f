package e2e

import (
	"strings"
	"testing"
)

const sampleConsole = "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\r\n" +
	"Booting from ROM..{\"time\":\"t\",\"level\":\"INFO\",\"msg\":\"agent serving\",\"addr\":\"vsock://-1:1024\",\"version\":\"v1\"}\r\n" +
	"[    4.521783] device-mapper: verity: 254:0: data block 0 is corrupted\r\n" +
	"{\"msg\":\"truncated\r\n" +
	"cocoon-initrd: FATAL: mounting /dev/dm-0 (erofs) failed\n"

func TestParseConsole(t *testing.T) {
	c := ParseConsole([]byte(sampleConsole))
	rec, ok := c.Find("agent serving")
	if !ok || rec.Str("addr") != "vsock://-1:1024" || rec.Str("version") != "v1" {
		t.Fatalf("agent record not found or wrong: %v", rec)
	}
	if len(c.Agent) != 1 {
		t.Errorf("records = %d, want 1 (a truncated line is text only)", len(c.Agent))
	}
	if got := c.Grep("device-mapper: verity", "corrupted"); len(got) != 1 || strings.HasPrefix(got[0], "[") {
		t.Errorf("verity line = %q, want it with the timestamp stripped", got)
	}
	if c.Lines[0] != "SeaBIOS (version 1.16.2)" {
		t.Errorf("escapes not stripped: %q", c.Lines[0])
	}
	if !strings.HasSuffix(c.Tail(1), "failed") {
		t.Errorf("tail = %q", c.Tail(1))
	}
}

func TestParseStatus(t *testing.T) {
	in := "pid1.cmdline /sbin/init\npid1.VmRSS 29436 kB\npid1.VmHWM 30000 kB\n" +
		"pid1.mount 22 1 254:0 / / ro,relatime - erofs /dev/dm-0 ro,user_xattr\n" +
		"pid1.mount 23 22 0:5 / /proc rw,nosuid - proc proc rw\n" +
		"module vsock\nproc 1 init 4002\nfuture.key anything\n" +
		`decision {"seq":3,"kind":"decision","request":"ExecProcessRequest","allowed":false,"hash":"ab"}` + "\n"
	st, err := ParseStatus([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if st.Cmdline != "/sbin/init" || st.RSSKiB != 29436 || st.HWMKiB != 30000 || !st.Modules["vsock"] || len(st.Procs) != 1 || st.Procs[0].SigCgt != 0x4002 ||
		len(st.Decisions) != 1 || st.Decisions[0].Request != "ExecProcessRequest" || *st.Decisions[0].Allowed {
		t.Errorf("status = %+v", st)
	}
	if m, ok := st.Mount("/"); !ok || m.FSType != "erofs" || m.Source != "/dev/dm-0" || m.Options != "ro,relatime" {
		t.Errorf("root = %+v", m)
	}
	bad := []string{
		"error cannot mount proc\n",
		"pid1.VmRSS 12 MB\n",
		"pid1.VmRSS lots kB\n",
		"pid1.mount 1 2 3\n",
		"pid1.mount 1 2 3 4 5 6 -\n",
		"proc self init 0\n",
		"proc 1 init zz\n",
		"decision {not json\n",
		"decision {\"request\":\"X\"}\n",
		strings.Repeat("x", maxStatus+1),
	}
	for _, b := range bad {
		if _, err := ParseStatus([]byte(b)); err == nil {
			t.Errorf("ParseStatus(%.40q) succeeded", b)
		}
	}
}

func FuzzParseConsole(f *testing.F) {
	f.Add([]byte(sampleConsole))
	f.Add([]byte("{}\n{\"msg\":1}\n\x1b[\n[ 1.0]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := ParseConsole(data)
		for _, r := range c.Agent {
			if r.Msg() == "" {
				t.Fatal("record without msg")
			}
		}
		_ = c.Tail(3)
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("pid1.cmdline /sbin/init\npid1.VmRSS 1 kB\npid1.mount 1 2 3 4 /x rw - t s o\nmodule m\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStatus(data)
		if err != nil {
			return
		}
		for _, m := range st.Mounts {
			if m.Point == "" || m.FSType == "" {
				t.Fatalf("empty mount fields accepted: %+v", m)
			}
		}
	})
}
