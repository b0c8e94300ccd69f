package decisionlog

import (
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// countedFile counts the writes to the log's file.
type countedFile struct {
	file
	writes atomic.Int64
}

func (c *countedFile) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.file.Write(b)
}

// BenchmarkAppendBatching reports how many lines concurrent appends put
// into one write: the group commit's effect.
func BenchmarkAppendBatching(b *testing.B) {
	l, err := Open(filepath.Join(testenv.SmallTmpfs(b, "64m"), "decisions.log"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	c := &countedFile{file: l.f}
	l.f = c
	yes := true
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		e := Entry{Kind: KindDecision, Request: "ReadStreamRequest", InputSHA256: strings.Repeat("ab", 32), PolicySHA256: strings.Repeat("cd", 32), Allowed: &yes}
		for pb.Next() {
			if _, err := l.Append(e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/float64(c.writes.Load()), "lines/write")
}
