package daemon

import "runtime/debug"

// Garbage collection settings for the agent unless GOGC or GOMEMLIMIT say
// otherwise (TuneGC). Streaming stdio allocates a copy of every message in
// ttrpc; with Go's default (GOGC=100) collection is most of the agent's CPU
// per read, and a target of 400 halves it (docs/benchmarks.md, "ReadStdout
// against bare ttrpc"). The idle heap is a few MB, so the target only
// matters under load; the soft limit keeps a burst from costing the VM more
// than gcMemoryLimit of heap.
const (
	gcPercent     = 400
	gcMemoryLimit = 64 << 20
)

// TuneGC applies the agent's garbage collection settings to the process,
// except those the environment (lookupEnv) sets. The agent's main calls it
// first thing; a program embedding the agent decides for itself.
func TuneGC(lookupEnv func(string) (string, bool)) {
	if _, ok := lookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
	if _, ok := lookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(gcMemoryLimit)
	}
}
