package metrics

import (
	"context"
	"testing"
)

// BenchmarkGather measures one GetMetrics on the real /proc.
func BenchmarkGather(b *testing.B) {
	m, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Gather(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
