package debugconsole

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// killSession kills every process in session sid. A shell with job control
// puts each background job in a process group of its own, so killing the
// shell's group would leave them running; the session holds them all.
// Two passes catch what forked while the first ran.
func killSession(sid int) {
	for range 2 {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return
		}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			if s, ok := statSession(st); ok && s == sid {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// statSession returns the session id from a /proc/<pid>/stat line:
// "pid (comm) state ppid pgrp session ...". comm may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func statSession(st []byte) (int, bool) {
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(st[i+1:])
	if len(f) < 4 {
		return 0, false
	}
	s, err := strconv.Atoi(string(f[3]))
	if err != nil || s <= 0 {
		return 0, false
	}
	return s, true
}
