// Package e2e boots the real cocoon guest image (rootfs/build.sh) under QEMU
// with a stock Debian kernel and drives the agent inside it over the Kata
// agent API. It owns the VM harness: artefact build, QEMU launch, serial
// console capture and parsing.
package e2e

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
)

// maxConsole bounds how much of a console log is parsed; a guest stuck in a
// print loop must not exhaust the test's memory.
const maxConsole = 16 << 20

// AgentRecord is one JSON log line the agent wrote to the console.
type AgentRecord map[string]any

// Msg returns the record's message.
func (r AgentRecord) Msg() string { s, _ := r["msg"].(string); return s }

// Str returns a string attribute.
func (r AgentRecord) Str(k string) string { s, _ := r[k].(string); return s }

// Console is a parsed serial console log.
type Console struct {
	// Lines are the console lines with carriage returns, terminal escapes
	// and kernel timestamps removed.
	Lines []string
	// Agent holds every line that decoded as an agent JSON record.
	Agent []AgentRecord
}

var (
	escapes   = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])`)
	timestamp = regexp.MustCompile(`^\[\s*\d+\.\d+\]\s?`)
)

// ParseConsole splits a console log into lines and agent records. Firmware
// noise may precede a record on the same line, and the kernel may interleave
// its own messages, so a record is any line suffix that starts at a '{' and
// decodes as a JSON object; anything else is kept as plain text only.
func ParseConsole(data []byte) Console {
	if len(data) > maxConsole {
		data = data[len(data)-maxConsole:]
	}
	var c Console
	for _, raw := range bytes.Split(data, []byte("\n")) {
		line := strings.ReplaceAll(string(raw), "\r", "")
		line = escapes.ReplaceAllString(line, "")
		line = timestamp.ReplaceAllString(line, "")
		if line == "" {
			continue
		}
		c.Lines = append(c.Lines, line)
		if i := strings.IndexByte(line, '{'); i >= 0 && strings.HasSuffix(line, "}") {
			var rec AgentRecord
			if json.Unmarshal([]byte(line[i:]), &rec) == nil && rec.Msg() != "" {
				c.Agent = append(c.Agent, rec)
			}
		}
	}
	return c
}

// Find returns the first agent record with msg.
func (c Console) Find(msg string) (AgentRecord, bool) {
	for _, r := range c.Agent {
		if r.Msg() == msg {
			return r, true
		}
	}
	return nil, false
}

// Grep returns the lines containing every one of subs.
func (c Console) Grep(subs ...string) []string {
	var out []string
	for _, l := range c.Lines {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// Tail returns the last n lines, for failure messages.
func (c Console) Tail(n int) string {
	if len(c.Lines) > n {
		return strings.Join(c.Lines[len(c.Lines)-n:], "\n")
	}
	return strings.Join(c.Lines, "\n")
}
