package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// procTicksPerSecond is USER_HZ, the unit of /proc/PID/stat's start time:
// 100 on every architecture Linux's ABI defines it for.
const procTicksPerSecond = 100

// startup times the agent's own share of boot, from the start of its process
// to serving, and puts it on the "agent serving" line: the console log of
// a VM then says where the agent's part of the boot went.
type startup struct {
	last   time.Time
	phases []slog.Attr
	sum    time.Duration
}

func newStartup() *startup { return &startup{last: time.Now()} }

// done records the phase that ends now.
func (s *startup) done(name string) {
	now := time.Now()
	d := now.Sub(s.last)
	s.last, s.sum = now, s.sum+d
	s.phases = append(s.phases, slog.Float64(name+"_ms", ms(d)))
}

// attr is the "startup" group. since_start_ms comes from the kernel's start
// time of the process (10 ms ticks; /proc is mounted by the system phase):
// when the kernel executes the agent as init that is the exec of init; an
// exec keeps the start time, so behind a stage-1 init that execs the agent
// it includes stage 1. before_run_ms, what came before RunWith (Go
// runtime, package initialisers, configuration), is the rest, and uptime_ms
// is the boot-time clock (uptime_ms - since_start_ms is the kernel's share
// when the agent is init).
func (s *startup) attr() slog.Attr {
	attrs := s.phases
	if up, exec, err := sinceStart(); err == nil {
		attrs = append(attrs, slog.Float64("since_start_ms", ms(exec)), slog.Float64("before_run_ms", ms(max(exec-s.sum, 0))),
			slog.Float64("uptime_ms", ms(up)))
	}
	return slog.Attr{Key: "startup", Value: slog.GroupValue(attrs...)}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e5) / 10 }

// sinceStart returns the boot-time clock and how long ago this process was
// started by that clock.
func sinceStart() (uptime, exec time.Duration, err error) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, err
	}
	ticks, err := procStartTicks(stat)
	if err != nil {
		return 0, 0, err
	}
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &now); err != nil {
		return 0, 0, err
	}
	uptime = time.Duration(now.Nano())
	return uptime, uptime - time.Duration(ticks)*(time.Second/procTicksPerSecond), nil
}

// procStartTicks reads the start time (field 22, clock ticks since boot)
// from /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from its last ")".
func procStartTicks(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command name")
	}
	// Fields 3 onwards; the start time is the 20th of them.
	f := bytes.Fields(stat[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want at least 20", len(f))
	}
	t, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat: start time: %w", err)
	}
	return t, nil
}
