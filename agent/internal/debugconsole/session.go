package debugconsole

import (
	"bytes"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// killWait bounds how long killSession waits for the killed processes to be
// gone; SIGKILL cannot be blocked, so this only matters for a process stuck
// in the kernel.
const killWait = 5 * time.Second

// killSession kills every process in session sid and waits until each has
// exited, so that when a session is reported ended nothing of it still runs.
// A shell with job control puts each background job in a process group of
// its own, so killing the shell's group would leave them running; the
// session holds them all. Two passes catch what forked while the first ran.
// Each process is killed and awaited through a pidfd, which names that
// process and no later one that reuses its pid.
func killSession(sid int) {
	var fds []int
	for range 2 {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			break
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
			if s, ok := statSession(st); !ok || s != sid {
				continue
			}
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue // gone already
			}
			if unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) != nil {
				unix.Close(fd)
				continue
			}
			fds = append(fds, fd)
		}
	}
	waitExited(fds, time.Now().Add(killWait))
}

// pidIsSessionLeader reports whether a live process with this pid leads a
// session (its session id is its pid). Once a session's leader has exited,
// that can only be a later process that reused the pid.
func pidIsSessionLeader(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s, ok := statSession(st)
	return ok && s == pid
}

// waitExited polls the pidfds until every process has exited (a pidfd
// becomes readable then) or the deadline passes, and closes them.
func waitExited(fds []int, deadline time.Time) {
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	pending := append([]int(nil), fds...)
	for len(pending) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		pfds := make([]unix.PollFd, len(pending))
		for i, fd := range pending {
			pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		}
		if _, err := unix.Poll(pfds, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
			return
		}
		next := pending[:0]
		for i, p := range pfds {
			if p.Revents == 0 {
				next = append(next, pending[i])
			}
		}
		pending = next
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
