// Package reaper makes the agent a child subreaper and collects the zombies
// nobody else will: processes orphaned inside the guest that the kernel
// re-parents to the agent.
//
// Design. The agent never calls wait4(-1). Every child the agent starts on
// purpose — container init and exec processes through libcontainer, helper
// commands through os/exec — is reaped by its owner with a pid-targeted wait
// (Go's os.Process waits on a pidfd), so its exit status always reaches the
// code that asked for it and libcontainer's own waits during start-up are
// never robbed. What remains are orphans: nobody waits for them. The sweeper
// lists the agent's zombie children from /proc (each thread's "children"
// file) on SIGCHLD and on a slow tick, and reaps a zombie only once it has
// stayed a zombie for Grace. An owner waits for its child as soon as it
// exits, far within Grace, so a zombie that old has no owner; the one case
// this could misjudge — a caller that postpones Wait for seconds after its
// child died — does not occur in the agent, where every Wait is issued
// immediately by a goroutine that exists only to wait.
package reaper

import (
	"context"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Grace is how long a zombie child must stay unreaped before the sweeper
// takes it as an orphan.
const Grace = 2 * time.Second

// SetSubreaper marks the agent as a child subreaper, so that orphans of its
// descendants come to it rather than to the guest's init.
func SetSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// Run sweeps orphaned zombies until ctx ends.
func Run(ctx context.Context) {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	defer signal.Stop(sigc)
	tick := time.NewTicker(Grace)
	defer tick.Stop()
	seen := map[int]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sigc:
		case <-tick.C:
		}
		Sweep(seen, time.Now())
	}
}

// Sweep reaps the zombie children first seen (in seen) at least Grace before
// now, and records new ones. It returns the pids it reaped.
func Sweep(seen map[int]time.Time, now time.Time) []int {
	zombies := ZombieChildren()
	var reaped []int
	live := make(map[int]bool, len(zombies))
	for _, pid := range zombies {
		live[pid] = true
		first, ok := seen[pid]
		if !ok {
			seen[pid] = now
			continue
		}
		if now.Sub(first) < Grace {
			continue
		}
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
			reaped = append(reaped, pid)
		}
		delete(seen, pid)
	}
	for pid := range seen {
		if !live[pid] {
			delete(seen, pid)
		}
	}
	return reaped
}

// ZombieChildren lists the agent's children that are zombies.
func ZombieChildren() []int {
	var out []int
	// Read the task directory once and each thread's children file by name:
	// a glob would stat every candidate too, on every SIGCHLD.
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return nil
	}
	tids, _ := d.Readdirnames(-1)
	d.Close()
	for _, tid := range tids {
		data, err := os.ReadFile("/proc/self/task/" + tid + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if state, ok := procState(pid); ok && state == 'Z' {
				out = append(out, pid)
			}
		}
	}
	return out
}

// procState returns the state letter from /proc/<pid>/stat.
func procState(pid int) (byte, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return ParseStatState(data)
}

// ParseStatState extracts the state field of a /proc/<pid>/stat line. The
// command name may contain spaces and parentheses, so the state is found
// after the last ')'.
func ParseStatState(stat []byte) (byte, bool) {
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 || i+2 >= len(stat) || stat[i+1] != ' ' {
		return 0, false
	}
	return stat[i+2], true
}
