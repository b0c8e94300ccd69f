package e2e

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestKataLevel(t *testing.T) {
	// log_forwarder.rs's own cases (:117-148) and Go slog's spellings,
	// which runtime-rs does not know and logs at INFO.
	for line, want := range map[string]string{
		`{"msg":"x","level":"TRCE"}`:  "TRCE",
		`{"msg":"x","level":"DEBG"}`:  "DEBG",
		`{"msg":"x","level":"INFO"}`:  "INFO",
		`{"msg":"x","level":"WARN"}`:  "WARN",
		`{"msg":"x","level":"ERRO"}`:  "ERRO",
		`{"msg":"x","level":"CRIT"}`:  "CRIT",
		`{"msg":"x","level":"abc"}`:   "INFO",
		`{"msg":"x","level":"DEBUG"}`: "INFO",
		`{"msg":"x","level":"ERROR"}`: "INFO",
		`{"msg":"x","level":"warn"}`:  "INFO",
		`{"msg":"x","level":2}`:       "INFO",
		`{"msg":"x"}`:                 "INFO",
		`[{"level":"WARN"}]`:          "INFO",
		`{"not a valid json struct"}`: "INFO",
		`not a valid json struct`:     "INFO",
	} {
		if got := KataLevel(line); got != want {
			t.Errorf("KataLevel(%s) = %s, want %s", line, got, want)
		}
	}
}

func TestReadKataLines(t *testing.T) {
	in := "{\"level\":\"DEBG\",\"msg\":\"a\"}\r\nplain text\n\n{\"level\":\"ERRO\",\"msg\":\"last\"}"
	var got []KataLine
	// One byte at a time: lines are whole however the stream is cut.
	err := ReadKataLines(iotest.OneByteReader(strings.NewReader(in)), func(l KataLine) bool {
		got = append(got, l)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []KataLine{
		{`{"level":"DEBG","msg":"a"}`, "DEBG"},
		{"plain text", "INFO"},
		{"", "INFO"},
		{`{"level":"ERRO","msg":"last"}`, "ERRO"},
	}
	if len(got) != len(want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
	if r := got[0].Record(); r.Msg() != "a" {
		t.Errorf("record of line 0 = %v", r)
	}
	if got[1].Record() != nil {
		t.Error("plain text decoded as a record")
	}
}

func TestReadKataLinesStops(t *testing.T) {
	var n int
	count := func(KataLine) bool { n++; return true }
	// runtime-rs stops at a line that is not UTF-8; the lines before it
	// were logged.
	if err := ReadKataLines(strings.NewReader("ok\nbad \xff\nafter\n"), count); !errors.Is(err, errNotUTF8) || n != 1 {
		t.Errorf("non-UTF-8: err %v after %d lines, want errNotUTF8 after 1", err, n)
	}
	n = 0
	if err := ReadKataLines(strings.NewReader(strings.Repeat("x", maxLogLine+1)+"\n"), count); err == nil || n != 0 {
		t.Errorf("oversized line: err %v after %d lines", err, n)
	}
	n = 0
	stop := func(KataLine) bool { n++; return false }
	if err := ReadKataLines(strings.NewReader("a\nb\n"), stop); err != nil || n != 1 {
		t.Errorf("each returning false: err %v after %d lines", err, n)
	}
}

func FuzzReadKataLines(f *testing.F) {
	f.Add([]byte("{\"level\":\"WARN\",\"msg\":\"m\"}\n{\"level\":null}\r\n\xff"))
	f.Add([]byte("[1]\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ReadKataLines(strings.NewReader(string(data)), func(l KataLine) bool {
			switch l.Level {
			case "TRCE", "DEBG", "INFO", "WARN", "ERRO", "CRIT":
			default:
				t.Fatalf("level %q", l.Level)
			}
			if strings.Contains(l.Text, "\n") {
				t.Fatalf("line %q holds a newline", l.Text)
			}
			if r := l.Record(); r != nil && r.Msg() == "" {
				t.Fatal("record without msg")
			}
			return true
		})
	})
}
