package logfwd

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// kataRecord is one line as runtime-rs's log forwarder sees it.
type kataRecord struct {
	Line  string
	Level string
}

// readKata reads r the way runtime-rs does (kata-containers 4.1,
// src/runtime-rs/crates/agent/src/log_forwarder.rs): lines from a
// BufReader (:65-67; tokio's next_line strips "\n" and a "\r" before it),
// reading stops at the first line that is not UTF-8, since next_line then
// returns Err and the while-let ends (:67); each line is logged whole at the
// level parse_agent_log_level gives it (:68-75).
func readKata(r io.Reader, each func(kataRecord) bool) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line == "" && err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		line = strings.TrimSuffix(line, "\r")
		if !utf8.ValidString(line) {
			return
		}
		if !each(kataRecord{Line: line, Level: kataLevelOf(line)}) || err != nil {
			return
		}
	}
}

// kataLevelOf mirrors parse_agent_log_level (log_forwarder.rs:88-106): a
// line that is not JSON, or whose "level" is not a string, or is a string
// other than the five listed, is INFO.
func kataLevelOf(line string) string {
	var v any
	if json.Unmarshal([]byte(line), &v) != nil {
		return "INFO"
	}
	obj, _ := v.(map[string]any)
	s, _ := obj["level"].(string)
	switch s {
	case "TRCE", "DEBG", "WARN", "ERRO", "CRIT":
		return s
	}
	return "INFO"
}

func TestKataLevelOf(t *testing.T) {
	// The cases of log_forwarder.rs's own test (:108-150) and Go slog's
	// spellings, which runtime-rs does not know.
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
		`{"msg":"x","level":3}`:       "INFO",
		`{"not a valid json struct"}`: "INFO",
		`not a valid json struct`:     "INFO",
		`[1,2]`:                       "INFO",
	} {
		if got := kataLevelOf(line); got != want {
			t.Errorf("%s: level %s, want %s", line, got, want)
		}
	}
}

// FuzzKataLevelOf: the reader mirror never panics and only yields the six
// names runtime-rs can log at.
func FuzzKataLevelOf(f *testing.F) {
	f.Add(`{"level":"WARN"}`)
	f.Add(`{"level":null}`)
	f.Add("\xff")
	f.Fuzz(func(t *testing.T, line string) {
		switch l := kataLevelOf(line); l {
		case "TRCE", "DEBG", "INFO", "WARN", "ERRO", "CRIT":
		default:
			t.Fatalf("level %q", l)
		}
		readKata(strings.NewReader(line+"\n"+line), func(kataRecord) bool { return true })
	})
}
