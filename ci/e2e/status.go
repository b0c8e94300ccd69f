package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// maxStatus bounds a guestprobe status reply.
const maxStatus = 1 << 20

// Mount is one line of PID 1's mountinfo.
type Mount struct {
	Point, FSType, Source, Options string
}

// Status is what guestprobe reports about PID 1 from inside the guest.
type Status struct {
	Cmdline string
	RSSKiB  int64
	HWMKiB  int64
	// AnonKiB is the agent's own memory; FileKiB is its binary's pages,
	// which the kernel can drop and read back from the image.
	AnonKiB, FileKiB int64
	Mounts           []Mount
	Modules          map[string]bool
	// Procs are the guest's processes.
	Procs []Proc
	// Decisions are the newest entries of the agent's decision log.
	Decisions []Decision
}

// Decision is one decision-log entry (the fields the tests look at).
type Decision struct {
	Kind    string `json:"kind"`
	Request string `json:"request"`
	Allowed *bool  `json:"allowed"`
	Hash    string `json:"hash"`
}

// Proc is one guest process.
type Proc struct {
	PID    int
	Name   string
	SigCgt uint64
}

// ParseStatus decodes guestprobe's "key value" lines. Unknown keys are
// ignored so the probe can grow; malformed known lines are errors.
func ParseStatus(data []byte) (Status, error) {
	if len(data) > maxStatus {
		return Status{}, fmt.Errorf("status reply is %d bytes, more than %d", len(data), maxStatus)
	}
	st := Status{Modules: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxStatus)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), " ")
		var err error
		switch key {
		case "error":
			return Status{}, fmt.Errorf("guestprobe: %s", val)
		case "pid1.cmdline":
			st.Cmdline = val
		case "pid1.VmRSS":
			st.RSSKiB, err = parseKiB(val)
		case "pid1.VmHWM":
			st.HWMKiB, err = parseKiB(val)
		case "pid1.RssAnon":
			st.AnonKiB, err = parseKiB(val)
		case "pid1.RssFile":
			st.FileKiB, err = parseKiB(val)
		case "pid1.mount":
			var m Mount
			m, err = parseMountinfo(val)
			st.Mounts = append(st.Mounts, m)
		case "module":
			st.Modules[val] = true
		case "decision":
			var d Decision
			if err = json.Unmarshal([]byte(val), &d); err == nil && d.Kind == "" {
				err = fmt.Errorf("decision without kind")
			}
			st.Decisions = append(st.Decisions, d)
		case "proc":
			var p Proc
			p, err = parseProc(val)
			st.Procs = append(st.Procs, p)
		}
		if err != nil {
			return Status{}, fmt.Errorf("status line %q: %w", sc.Text(), err)
		}
	}
	return st, sc.Err()
}

func parseProc(s string) (Proc, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return Proc{}, fmt.Errorf("want \"PID NAME SIGCGT\"")
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return Proc{}, err
	}
	cgt, err := strconv.ParseUint(f[2], 16, 64)
	if err != nil {
		return Proc{}, err
	}
	return Proc{PID: pid, Name: f[1], SigCgt: cgt}, nil
}

func parseKiB(s string) (int64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), " ")
	if unit != "kB" {
		return 0, fmt.Errorf("want \"<n> kB\", got %q", s)
	}
	return strconv.ParseInt(num, 10, 64)
}

// parseMountinfo reads the fields of proc(5) mountinfo the tests look at:
// mount point (5th), options (6th), and after the " - " separator the file
// system type and source.
func parseMountinfo(line string) (Mount, error) {
	pre, post, ok := strings.Cut(line, " - ")
	f := strings.Fields(pre)
	g := strings.Fields(post)
	if !ok || len(f) < 6 || len(g) < 2 {
		return Mount{}, fmt.Errorf("malformed mountinfo line")
	}
	return Mount{Point: f[4], Options: f[5], FSType: g[0], Source: g[1]}, nil
}

// Mount returns the last mount at point (the one visible there).
func (s Status) Mount(point string) (Mount, bool) {
	for i := len(s.Mounts) - 1; i >= 0; i-- {
		if s.Mounts[i].Point == point {
			return s.Mounts[i], true
		}
	}
	return Mount{}, false
}
