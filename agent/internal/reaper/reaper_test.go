package reaper

import (
	"os/exec"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A child nobody waits for is reaped once it has been a zombie for Grace,
// not before.
func TestSweepReapsUnownedZombies(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Wait for the exit without reaping it (WNOWAIT): the child is a
	// zombie from then on.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ZombieChildren(), pid) {
		t.Fatalf("exited child %d not listed as a zombie: %v", pid, ZombieChildren())
	}
	seen := map[int]time.Time{}
	now := time.Now()
	if got := Sweep(seen, now); slices.Contains(got, pid) {
		t.Fatal("reaped a fresh zombie")
	}
	if got := Sweep(seen, now.Add(Grace/2)); slices.Contains(got, pid) {
		t.Fatal("reaped within the grace period")
	}
	if got := Sweep(seen, now.Add(Grace)); !slices.Contains(got, pid) {
		t.Fatalf("zombie %d not reaped: %v", pid, got)
	}
	if slices.Contains(ZombieChildren(), pid) {
		t.Fatal("zombie still listed")
	}
}

func TestParseStatState(t *testing.T) {
	for in, want := range map[string]byte{
		"1 (sh) S 0 1":       'S',
		"2 (a) b) (c) Z 1 2": 'Z',
		"3 (x)":              0,
		"garbage":            0,
		"4 (x)Z":             0,
	} {
		got, _ := ParseStatState([]byte(in))
		if got != want {
			t.Errorf("%q: %q want %q", in, got, want)
		}
	}
}

func FuzzParseStatState(f *testing.F) {
	f.Add([]byte("1 (sh) S 0"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseStatState(b) })
}
