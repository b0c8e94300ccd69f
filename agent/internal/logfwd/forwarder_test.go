package logfwd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// serve runs f on a fresh unix socket and returns its address; the
// forwarder's own events go to console.
func serve(t *testing.T, ctx context.Context, f *Forwarder, console *slog.Logger) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- f.Serve(ctx, l, console) }()
	t.Cleanup(func() {
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

func dial(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// records reads c as runtime-rs does until n records have arrived.
func records(t *testing.T, ctx context.Context, c net.Conn, n int) []kataRecord {
	t.Helper()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	var got []kataRecord
	readKata(c, func(r kataRecord) bool {
		got = append(got, r)
		return len(got) < n
	})
	if len(got) < n {
		t.Fatalf("read %d records, want %d: %v", len(got), n, got)
	}
	return got
}

func field(t *testing.T, r kataRecord, key string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Line), &m); err != nil {
		t.Fatalf("forwarded line %q is not JSON: %v", r.Line, err)
	}
	return m[key]
}

func TestRuntimeRsReadsLevels(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	f := New(0)
	log := Attach(slog.New(slog.DiscardHandler), f, slog.LevelDebug, false)
	// Records logged before the reader connects are queued for it: the
	// runtime attaches only after the ttrpc connection is up.
	log.Debug("one", "container_id", "c1")
	log.Info("two")
	log.Warn("three")
	log.Error("four", "error", "boom")
	log.Log(ctx, slog.LevelError+4, "five")
	c := dial(t, serve(t, ctx, f, slog.New(slog.DiscardHandler)))
	got := records(t, ctx, c, 5)
	want := []struct{ msg, level string }{{"one", "DEBG"}, {"two", "INFO"}, {"three", "WARN"}, {"four", "ERRO"}, {"five", "ERRO"}}
	for i, w := range want {
		if got[i].Level != w.level || field(t, got[i], "msg") != w.msg {
			t.Errorf("record %d: %s at %s, want %q at %s", i, got[i].Line, got[i].Level, w.msg, w.level)
		}
	}
	if field(t, got[0], "container_id") != "c1" || field(t, got[3], "error") != "boom" {
		t.Errorf("attributes lost: %s %s", got[0].Line, got[3].Line)
	}
	// Records logged while the reader is attached reach it too.
	log.Info("six")
	if r := records(t, ctx, c, 1)[0]; field(t, r, "msg") != "six" {
		t.Errorf("got %s, want six", r.Line)
	}
}

// A reader that stops reading never stops the agent's logging; what could
// not be queued is dropped, counted, and reported to the reader once it
// reads again, so every record is either delivered or counted.
func TestStalledReaderDoesNotBlockLogging(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	f := New(64 << 10)
	console := make(testenv.LogRecords, 16)
	c := dial(t, serve(t, ctx, f, slog.New(slog.NewJSONHandler(console, nil))))
	console.Wait(t, ctx, "log reader connected")

	// 16 MiB is far more than the queue plus the socket's buffers.
	const n = 16 << 10
	pad := strings.Repeat("x", 1000)
	log := slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{ReplaceAttr: Replacer(false)}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			log.Info("flood", "i", i, "pad", pad)
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("logging blocked behind a reader that does not read")
	}
	dropped := f.Dropped()
	if dropped == 0 {
		t.Fatal("nothing dropped although the reader read nothing")
	}

	// The reader catches up: it gets what was queued, then the report.
	var floods, reported uint64
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	readKata(c, func(r kataRecord) bool {
		switch field(t, r, "msg") {
		case "flood":
			floods++
		default:
			if r.Level != "WARN" || !strings.HasSuffix(field(t, r, "msg").(string), " log lines dropped") {
				t.Fatalf("unexpected record %s", r.Line)
			}
			reported += uint64(field(t, r, "dropped").(float64))
		}
		return floods+reported < n
	})
	if floods+reported != n || reported != dropped {
		t.Errorf("delivered %d, reported %d dropped, counted %d dropped; want delivered+reported = %d and reported = counted", floods, reported, dropped, n)
	}
	log.Info("after")
	if r := records(t, ctx, c, 1)[0]; field(t, r, "msg") != "after" {
		t.Errorf("got %s after catching up, want the next record", r.Line)
	}
	if f.Dropped() != dropped {
		t.Errorf("dropped %d once the reader caught up, want %d", f.Dropped(), dropped)
	}
}

func TestOneReaderAtATime(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	f := New(0)
	console := make(testenv.LogRecords, 16)
	path := serve(t, ctx, f, slog.New(slog.NewJSONHandler(console, nil)))
	first := dial(t, path)
	console.Wait(t, ctx, "log reader connected")

	second := dial(t, path)
	console.Wait(t, ctx, "log reader refused: another reader is connected")
	second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := second.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("second reader: read %d, %v; want EOF", n, err)
	}

	// Once the first hangs up, the next reader gets the stream.
	first.Close()
	console.Wait(t, ctx, "log reader gone")
	third := dial(t, path)
	console.Wait(t, ctx, "log reader connected")
	f.Write([]byte(`{"level":"INFO","msg":"hello"}`))
	if r := records(t, ctx, third, 1)[0]; field(t, r, "msg") != "hello" {
		t.Errorf("third reader got %s", r.Line)
	}
}

func TestOversizedRecordIsCounted(t *testing.T) {
	f := New(0)
	f.Write([]byte(`{"msg":"` + strings.Repeat("y", MaxRecord) + `"}`))
	f.Write([]byte(`{"msg":"small"}`))
	if f.Dropped() != 1 {
		t.Fatalf("dropped %d, want 1", f.Dropped())
	}
	q := f.take()
	if len(q) != 2 || !strings.Contains(string(q[0]), `"1 log lines dropped"`) || string(q[1]) != "{\"msg\":\"small\"}\n" {
		t.Errorf("queue %q: want the report, then the small record", q)
	}
}

// FuzzWrite: whatever the records, the queue stays within its bound and
// every record is queued or counted.
func FuzzWrite(f *testing.F) {
	f.Add([]byte("{}"), 3, 100)
	f.Add([]byte(""), 1, 1)
	f.Fuzz(func(t *testing.T, rec []byte, times, max int) {
		times = times%64 + 64 // 1..127
		fw := New(max % (1 << 16))
		for range times {
			fw.Write(rec)
			if fw.bytes > fw.max {
				t.Fatalf("queue holds %d bytes, bound %d", fw.bytes, fw.max)
			}
		}
		var queued uint64
		for _, r := range fw.queue {
			if !strings.Contains(string(r), "log lines dropped") {
				queued++
			}
		}
		if queued+fw.Dropped() != uint64(times) {
			t.Fatalf("queued %d + dropped %d != written %d", queued, fw.Dropped(), times)
		}
	})
}
