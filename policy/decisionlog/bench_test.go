package decisionlog_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

// streamDecision is the entry the gate appends for an allowed
// ReadStdout/WaitProcess-class request: no ops, no message.
func streamDecision() decisionlog.Entry {
	return decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "ReadStreamRequest",
		InputSHA256: strings.Repeat("ab", 32), PolicySHA256: strings.Repeat("cd", 32), Allowed: yes()}
}

// appender is what the benchmarks drive: the Log, or the baseline below.
type appender interface {
	Append(decisionlog.Entry) (string, error)
}

// unbatched is the append path as it was before group commit, kept as
// the baseline measured in the same run: one json.Marshal, one sha256 and
// one write(2) per entry under one mutex. Its file is emptied at the size
// the Log rotates at, so both pay for a file of the same size.
type unbatched struct {
	mu   sync.Mutex
	f    *os.File
	size int64
	seq  uint64
	last string
}

func (u *unbatched) Append(e decisionlog.Entry) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	e.Seq, e.Prev, e.Hash = u.seq, u.last, ""
	e.Time = time.Now().UTC().Format(time.RFC3339Nano)
	body, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	line := make([]byte, 0, len(body)+len(hash)+12)
	line = append(line, body[:len(body)-1]...)
	line = append(line, `,"hash":"`...)
	line = append(line, hash...)
	line = append(line, "\"}\n"...)
	if u.size+int64(len(line)) > 8<<20 {
		if err := u.f.Truncate(0); err != nil {
			return "", err
		}
		u.size = 0
	}
	if _, err := u.f.Write(line); err != nil {
		return "", err
	}
	u.size += int64(len(line))
	u.seq++
	u.last = hash
	return hash, nil
}

// benchLogs runs fn against the baseline and the Log, each on its own
// tmpfs as the agent's /run/cocoon is, with the default limits.
func benchLogs(b *testing.B, fn func(*testing.B, appender)) {
	b.Run("impl=unbatched", func(b *testing.B) {
		f, err := os.OpenFile(filepath.Join(testenv.SmallTmpfs(b, "64m"), "decisions.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		fn(b, &unbatched{f: f, last: decisionlog.Genesis})
	})
	b.Run("impl=log", func(b *testing.B) {
		l, err := decisionlog.Open(filepath.Join(testenv.SmallTmpfs(b, "64m"), "decisions.log"), decisionlog.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		fn(b, l)
	})
}

// BenchmarkAppend is one decision's log line, appended by one goroutine.
func BenchmarkAppend(b *testing.B) {
	benchLogs(b, func(b *testing.B, a appender) {
		e := streamDecision()
		b.ReportAllocs()
		cpu := processCPU(b)
		for b.Loop() {
			if _, err := a.Append(e); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
}

// BenchmarkAppendParallel is decisions of concurrent requests (the
// runtime keeps ReadStdout, ReadStderr, WaitProcess and GetOOMEvent
// calls in flight at once), 16 goroutines per core.
func BenchmarkAppendParallel(b *testing.B) {
	benchLogs(b, func(b *testing.B, a appender) {
		b.ReportAllocs()
		b.SetParallelism(16)
		cpu := processCPU(b)
		b.RunParallel(func(pb *testing.PB) {
			e := streamDecision()
			for pb.Next() {
				if _, err := a.Append(e); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportCPU(b, cpu)
	})
}

// processCPU is the CPU time (user and system, all threads) the process
// has used. The machine is shared, so CPU per entry is the steadier
// measure of what logging costs the agent; ns/op also counts waiting.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(processCPU(b)-since)/float64(b.N), "cpu-ns/op")
}
