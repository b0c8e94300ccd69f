package daemon

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))

	TuneGC(func(string) (string, bool) { return "", false })
	if got := debug.SetGCPercent(-1); got != gcPercent {
		t.Errorf("GC percent %d, want %d", got, gcPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != gcMemoryLimit {
		t.Errorf("memory limit %d, want %d", got, gcMemoryLimit)
	}

	// The operator's GOGC and GOMEMLIMIT win.
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(1 << 40)
	TuneGC(func(string) (string, bool) { return "x", true })
	if got := debug.SetGCPercent(-1); got != 100 {
		t.Errorf("GOGC set, GC percent changed to %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("GOMEMLIMIT set, limit changed to %d", got)
	}
}
