// Package e2e boots the real cocoon guest image (rootfs/build.sh) under QEMU
// with a stock Debian kernel and drives the agent inside it over the Kata
// agent API. It owns the VM harness: artefact build, QEMU launch, serial
// console capture and parsing.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"
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
		line, rec := parseLine(raw)
		if line == "" {
			continue
		}
		c.Lines = append(c.Lines, line)
		if rec != nil {
			c.Agent = append(c.Agent, rec)
		}
	}
	return c
}

// parseLine cleans one console line and decodes the agent record it ends
// with, if any.
func parseLine(raw []byte) (string, AgentRecord) {
	line := strings.ReplaceAll(string(raw), "\r", "")
	line = escapes.ReplaceAllString(line, "")
	line = timestamp.ReplaceAllString(line, "")
	if i := strings.IndexByte(line, '{'); i >= 0 && strings.HasSuffix(line, "}") {
		var rec AgentRecord
		if json.Unmarshal([]byte(line[i:]), &rec) == nil && rec.Msg() != "" {
			return line, rec
		}
	}
	return line, nil
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

// maxLine bounds a console line the watcher keeps while it waits for the
// line's end; the rest of a longer line is dropped (no agent record is
// that long).
const maxLine = 1 << 20

// consoleWatch follows a console log as QEMU appends to it: an inotify
// watch on the file says when it has grown, and next parses only what was
// appended since it last looked, so waiting for a record neither sleeps
// nor parses the whole log again.
type consoleWatch struct {
	events *os.File // inotify descriptor, non-blocking so deadlines work
	log    *os.File // the console log, read from where next stopped
	line   []byte   // the unfinished last line
	long   bool     // line reached maxLine; drop the rest of it
	buf    []byte
}

// watchConsole starts following the console log at path, which must exist.
// The watch is in place before the first read, so no write is missed.
func watchConsole(path string) (*consoleWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	events := os.NewFile(uintptr(fd), "inotify")
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
		events.Close()
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	log, err := os.Open(path)
	if err != nil {
		events.Close()
		return nil, err
	}
	return &consoleWatch{events: events, log: log, buf: make([]byte, 64<<10)}, nil
}

func (w *consoleWatch) Close() {
	w.events.Close()
	w.log.Close()
}

// next returns the agent records of the lines completed since the last call.
func (w *consoleWatch) next() ([]AgentRecord, error) {
	var recs []AgentRecord
	for {
		n, err := w.log.Read(w.buf)
		data := w.buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				w.keep(data)
				break
			}
			w.keep(data[:i])
			if _, rec := parseLine(w.line); rec != nil && !w.long {
				recs = append(recs, rec)
			}
			w.line, w.long = w.line[:0], false
			data = data[i+1:]
		}
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
	}
}

func (w *consoleWatch) keep(part []byte) {
	if room := maxLine - len(w.line); len(part) > room {
		part, w.long = part[:room], true
	}
	w.line = append(w.line, part...)
}

// wait blocks until the log has been written to since the last wait, or
// until interrupt.
func (w *consoleWatch) wait() error {
	// Every event means "modified"; reading drains all that are queued.
	var ev [4096]byte
	_, err := w.events.Read(ev[:])
	return err
}

// interrupt makes the current and every later wait return at once.
func (w *consoleWatch) interrupt() { _ = w.events.SetReadDeadline(time.Now()) }
