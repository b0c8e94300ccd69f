package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// The log port's consumer is runtime-rs (kata-containers
// src/runtime-rs/crates/agent/src/log_forwarder.rs, read at commit
// 1de4269299fb8033f2a4dbbd856d27e04e72ee14; line numbers below are from
// it). It puts agent.log_vport=1025 on the command line when its debug is on
// (src/runtime-rs/crates/hypervisor/src/kernel_param.rs:18, 65-67 at
// 0a4b755cd9e22b31cfdbfcb9919b4122b51c26cc), connects there and reads the
// stream as lines (log_forwarder.rs:69-71), logging each whole line at the
// level parse_agent_log_level gives it (:72-79, :93-111).

// Level names runtime-rs maps to its own levels (log_forwarder.rs:17-22);
// any other line is logged at INFO.
const (
	kataTrace = "TRCE"
	kataDebug = "DEBG"
	kataInfo  = "INFO"
	kataWarn  = "WARN"
	kataError = "ERRO"
	kataCrit  = "CRIT"
)

// maxLogLine bounds one line the reader keeps. runtime-rs has no bound; the
// agent drops records over 64 KiB (agent/internal/logfwd.MaxRecord), so a longer
// line is a fault this harness reports rather than buffers.
const maxLogLine = 1 << 20

// errNotUTF8 ends a stream the way runtime-rs's reading ends: next_line
// fails on bytes that are not UTF-8 and the while-let stops
// (log_forwarder.rs:71).
var errNotUTF8 = errors.New("log port: line is not UTF-8 (runtime-rs stops reading here)")

// KataLine is one log-port line as runtime-rs sees it.
type KataLine struct {
	// Text is the line without its "\n" (and a "\r" before it), as tokio's
	// next_line returns it; runtime-rs logs it whole.
	Text string
	// Level is what parse_agent_log_level makes of it.
	Level string
}

// Record decodes the line as an agent record; nil when it is not a JSON
// object with a message.
func (l KataLine) Record() AgentRecord {
	var r AgentRecord
	if json.Unmarshal([]byte(l.Text), &r) != nil || r.Msg() == "" {
		return nil
	}
	return r
}

// ReadKataLines reads r line by line as runtime-rs does and calls each for
// every line until each returns false, r ends (nil, also for a last line
// without "\n", which next_line returns too) or fails.
func ReadKataLines(r io.Reader, each func(KataLine) bool) error {
	br := bufio.NewReader(r)
	for {
		line, err := readLine(br)
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" {
				return nil
			}
			if !errors.Is(err, io.EOF) {
				return err
			}
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if !utf8.ValidString(line) {
			return errNotUTF8
		}
		if !each(KataLine{Text: line, Level: KataLevel(line)}) || err != nil {
			return nil
		}
	}
}

// readLine returns one line with its "\n", or what is left at EOF.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		frag, err := br.ReadSlice('\n')
		if b.Len()+len(frag) > maxLogLine {
			return "", fmt.Errorf("log port: line longer than %d bytes", maxLogLine)
		}
		b.Write(frag)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return b.String(), err
		}
	}
}

// KataLevel mirrors parse_agent_log_level (log_forwarder.rs:93-111): the
// "level" string of a JSON value when it is one of five names, else INFO
// (not JSON, not an object, no "level", not a string, another spelling).
func KataLevel(line string) string {
	var v any
	if json.Unmarshal([]byte(line), &v) != nil {
		return kataInfo
	}
	obj, _ := v.(map[string]any)
	switch s, _ := obj["level"].(string); s {
	case kataTrace, kataDebug, kataWarn, kataError, kataCrit:
		return s
	}
	return kataInfo
}

// kataLevelOfGo is the level the log port must carry for a console record
// at Go slog's level name: slog-rs's spelling of the same level
// (agent/internal/logfwd.KataLevel). Empty for a name slog does not write.
func kataLevelOfGo(level string) string {
	switch level {
	case "DEBUG":
		return kataDebug
	case "INFO":
		return kataInfo
	case "WARN":
		return kataWarn
	case "ERROR":
		return kataError
	}
	return ""
}
