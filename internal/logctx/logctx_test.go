package logctx

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestHandlerAddsRequestAttrs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil))).With("component", "storage")
	var id string // set by "decoding", before the goroutine below starts
	ctx := Attach(context.Background(), func() []slog.Attr {
		if id == "" {
			return nil
		}
		return []slog.Attr{slog.String("method", "CreateContainer"), slog.String("container_id", id)}
	})
	log.InfoContext(ctx, "before decode")
	id = "c1"
	done := make(chan struct{})
	go func() { // a goroutine the handler started logs with the same context
		defer close(done)
		log.WarnContext(ctx, "mounted", "error", "none")
	}()
	<-done
	log.Info("no context")

	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines: %s", len(lines), buf.Bytes())
	}
	if _, ok := lines[0]["container_id"]; ok {
		t.Errorf("attributes before Set: %v", lines[0])
	}
	if lines[1]["method"] != "CreateContainer" || lines[1]["container_id"] != "c1" || lines[1]["component"] != "storage" {
		t.Errorf("request attributes missing: %v", lines[1])
	}
	if _, ok := lines[2]["method"]; ok {
		t.Errorf("attributes without a context: %v", lines[2])
	}
}

func TestNoAttrsWithoutAttach(t *testing.T) {
	if a := Attrs(context.Background()); a != nil {
		t.Errorf("attrs %v", a)
	}
	if Attrs(nil) != nil { // a nil context must not panic
		t.Error("nil context")
	}
}
