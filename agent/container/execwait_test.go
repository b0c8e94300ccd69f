package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// execHelperArg, as the test binary's first argument, makes it a process in
// the state a container init is in while runc's Go init execs the workload
// from a thread other than the thread-group leader: the leader has exited (a
// zombie, with no executable and no namespaces in /proc) and the exec has
// not finished. The second argument is the program the helper execs once
// stdin has a byte. An argument rather than an environment variable: the
// first os.Getenv copies the environment, and TestPackageInitDoesNoWork
// counts what this package's initialisation allocates.
const execHelperArg = "cocoon-test-exec-helper"

// The helper runs in init, where the runtime keeps the main goroutine on the
// main thread, the thread-group leader.
func init() {
	if len(os.Args) != 3 || os.Args[1] != execHelperArg {
		return
	}
	target := os.Args[2]
	ready := make(chan struct{})
	go func() {
		close(ready)
		var b [1]byte
		if _, err := os.Stdin.Read(b[:]); err != nil {
			os.Exit(3)
		}
		_ = syscall.Exec(target, []string{target, "1000"}, nil)
		os.Exit(4)
	}()
	<-ready
	// Only the leader thread ends (exit, not exit_group): the process
	// lives on in the goroutine above.
	for {
		unix.RawSyscall(unix.SYS_EXIT, 0, 0, 0)
	}
}

// The init of a container may make its final execve from a thread other
// than its leader; until the kernel has moved the exec'ing thread into the
// leader's place, /proc/<pid>/exe and /proc/<pid>/ns/* do not resolve.
// That is not the end of the exec: Start must keep waiting, or an exec into
// the container finds no namespaces to join and a SIGTERM is judged by the
// old program's handlers.
func TestExecDoneWaitsThroughLeaderExit(t *testing.T) {
	const target = "/bin/sleep"
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	before, ok := exeIdentity(os.Getpid())
	if !ok {
		t.Fatal("cannot read this test's own executable")
	}
	cmd := exec.Command(self, execHelperArg, target)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=4")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	pid := cmd.Process.Pid

	// Wait for the helper's leader to be a zombie while the process lives.
	waitFor(t, exited, func() bool { return procState(pid) == 'Z' })
	if _, err := os.Open(fmt.Sprintf("/proc/%d/ns/ipc", pid)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("opening the ipc namespace of a process whose leader has exited: %v, want not found", err)
	}
	if execDone(pid, before) {
		t.Fatal("exec reported done while the leader thread has exited and the exec has not been made")
	}

	if _, err := io.WriteString(stdin, "x"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := awaitExec(ctx, pid, before, exited); err != nil {
		t.Fatalf("waiting for the exec: %v", err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/ipc", pid))
	if err != nil {
		t.Fatalf("exec done but the namespaces do not resolve: %v", err)
	}
	f.Close()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	want, _ := os.Readlink(target)
	if err != nil || (exe != target && exe != want && !bytes.HasSuffix([]byte(exe), []byte("/sleep"))) {
		t.Fatalf("exec done with executable %q (%v), want %s", exe, err, target)
	}
	if signalHandled(pid, unix.SIGTERM) {
		t.Fatal("exec done while the old program's SIGTERM handler is still installed")
	}
}

// waitFor polls cond until it holds; the process ending first, or ten
// seconds, fails the test.
func waitFor(t *testing.T, exited <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		select {
		case <-exited:
			t.Fatal("helper process exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// procState is the state letter of /proc/<pid>/stat, 0 if unreadable.
func procState(pid int) byte {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return 0
	}
	return data[i+2]
}

func TestStatStartCode(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want uint64
		ok   bool
	}{
		{"42 (sleep) S 1 42 42 0 -1 4194560 99 0 0 0 0 0 0 0 20 0 1 0 123 2138112 120 18446744073709551615 4194304 4835773 140736 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0", 4194304, true},
		{"7 (a) b) (c) Z 1 7 7 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 9 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0", 0, true},
		{"7 (short) S 1 2 3", 0, false},
		{"7 (bad) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9 0 0 1 x 0 0", 0, false},
		{"no paren", 0, false},
	} {
		got, ok := StatStartCode([]byte(tc.stat))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %d %v, want %d %v", tc.stat, got, ok, tc.want, tc.ok)
		}
	}
	// This process has its program loaded.
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := StatStartCode(data); !ok || v == 0 {
		t.Fatalf("own startcode %d %v", v, ok)
	}
}

func FuzzStatStartCode(f *testing.F) {
	f.Add([]byte("1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 1 4194304 2 3 0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := StatStartCode(data)
		if !ok && v != 0 {
			t.Fatalf("value %d without ok", v)
		}
	})
}
