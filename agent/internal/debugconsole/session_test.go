package debugconsole

import (
	"os/exec"
	"syscall"
	"testing"
)

func TestStatSession(t *testing.T) {
	for st, want := range map[string]int{
		"27043 (sleep) S 1 27043 27042 0 -1 4194304": 27042,
		"5 (a) b) c) R 1 5 77 0":                     77,
		"5 (x) R 1 5":                                -1,
		"no parenthesis":                             -1,
		"5 (x) R 1 5 0 0":                            -1,
		"5 (x) R 1 5 notanumber 0":                   -1,
	} {
		got, ok := statSession([]byte(st))
		if (want < 0) == ok || (ok && got != want) {
			t.Errorf("%q: %d %v, want %d", st, got, ok, want)
		}
	}
}

func FuzzStatSession(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0"))
	f.Fuzz(func(t *testing.T, st []byte) {
		if s, ok := statSession(st); ok && s <= 0 {
			t.Fatalf("session %d accepted", s)
		}
	})
}

// This test process does not lead its session (go test runs it in the
// shell's or the runner's), while a process started with Setsid does.
func TestPidIsSessionLeader(t *testing.T) {
	cmd := exec.Command("sleep", "100")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if !pidIsSessionLeader(cmd.Process.Pid) {
		t.Errorf("a setsid child is not reported as its session's leader")
	}
	if pidIsSessionLeader(1 << 30) {
		t.Errorf("a pid that does not exist is reported as a session leader")
	}
}
