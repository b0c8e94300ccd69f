package testenv

import (
	"context"
	"encoding/json"
	"testing"
)

// LogRecords is the writer of a test's slog JSON handler: it hands every
// record, decoded, to the channel, so a test waits for the event it
// expects instead of sleeping. Writes block while the channel is full.
type LogRecords chan map[string]any

func (r LogRecords) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	r <- m
	return len(p), nil
}

// Wait returns the first record whose msg is msg, dropping those before
// it; the test fails if ctx ends first.
func (r LogRecords) Wait(t testing.TB, ctx context.Context, msg string) map[string]any {
	t.Helper()
	for {
		select {
		case m := <-r:
			if m["msg"] == msg {
				return m
			}
		case <-ctx.Done():
			t.Fatalf("no %q record: %v", msg, ctx.Err())
			return nil
		}
	}
}
