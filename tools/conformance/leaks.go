package conformance

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// mountsUnderRunDir counts the agent's mounts at or below the Kata run
// directory, by mount point. The agent's own mount table is read when its
// pid is known (a unix socket peer); otherwise this process's, which is the
// same table when both share the mount namespace.
func (h *Harness) mountsUnderRunDir() map[string]int {
	file := "/proc/self/mountinfo"
	if h.agentPID > 0 {
		file = "/proc/" + strconv.Itoa(h.agentPID) + "/mountinfo"
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	root := filepath.Clean(h.cfg.KataRunDir)
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	out := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := strings.ReplaceAll(f[4], `\040`, " ")
		if p == root || strings.HasPrefix(p, root+"/") {
			out[p]++
		}
	}
	return out
}

// diffMounts lists mount points present more often in after than before.
func diffMounts(before, after map[string]int) []string {
	var out []string
	for p, n := range after {
		if n > before[p] {
			out = append(out, p)
		}
	}
	return out
}

// zombies lists the pids of zombie processes whose parent is the agent.
// Without the agent's pid there is nothing to look at.
func (h *Harness) zombies() []int {
	if h.agentPID <= 0 {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name may contain spaces and parentheses; the fields
		// after the last ')' are state and parent pid.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[0] != "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == h.agentPID {
			out = append(out, pid)
		}
	}
	return out
}
