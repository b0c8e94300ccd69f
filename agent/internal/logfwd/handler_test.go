package logfwd

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
)

// forwarded logs one record through Attach and returns it as forwarded.
func forwarded(t *testing.T, confidential bool, args ...any) map[string]any {
	t.Helper()
	f := New(0)
	var console bytes.Buffer
	log := Attach(slog.New(slog.NewJSONHandler(&console, nil)), f, slog.LevelInfo, confidential)
	log.With("container_id", "c1").Error("panic in handler", args...)
	q := f.take()
	if len(q) != 1 {
		t.Fatalf("forwarded %d records, want 1", len(q))
	}
	if console.Len() == 0 {
		t.Error("the console did not get the record")
	}
	var m map[string]any
	if err := json.Unmarshal(q[0], &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConfidentialRedactsWhatTheHostCannotSee(t *testing.T) {
	args := []any{"method", "CreateContainer", "panic", "secret-value", "stack", "goroutine 1", "err", "kbs:///a/b/c: 404", "attest_error", "resource kbs:///default/key/1: 404", "root_hash", "ab12", "prints", "pstate", "unlisted", 7, slog.Group("g", "error", "x")}
	m := forwarded(t, true, args...)
	for _, k := range []string{"panic", "stack", "err", "attest_error", "prints", "unlisted"} {
		if m[k] != Redacted {
			t.Errorf("%s = %v, want %s", k, m[k], Redacted)
		}
	}
	if m["method"] != "CreateContainer" || m["container_id"] != "c1" || m["root_hash"] != "ab12" || m["msg"] != "panic in handler" || m["level"] != "ERRO" {
		t.Errorf("host-visible values changed: %v", m)
	}
	if g, _ := m["g"].(map[string]any); g["error"] != "x" {
		t.Errorf("group member lost: %v", m["g"])
	}

	// Outside confidential mode nothing is redacted.
	m = forwarded(t, false, args...)
	if m["panic"] != "secret-value" || m["stack"] != "goroutine 1" || m["unlisted"] != float64(7) {
		t.Errorf("non-confidential record redacted: %v", m)
	}
}
