package decisionlog

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
)

// resume continues the chain of the file already at l.path and opens it
// for appending. The live file is at most MaxBytes plus one entry, so it
// is read whole, once, at start.
func (l *Log) resume() error {
	b, err := os.ReadFile(l.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	complete := b[:bytes.LastIndexByte(b, '\n')+1]
	torn := b[len(complete):]
	if len(complete) > 0 {
		e, err := lastEntry(complete)
		if err != nil {
			return l.setAside(err)
		}
		l.seq, l.last = e.Seq+1, e.Hash
	} else if err := l.continueRotated(); err != nil {
		return err
	}
	if len(torn) > 0 {
		// The torn entry's Append failed, so its request was never
		// answered as recorded; cut it and say so in the chain.
		if err := os.Truncate(l.path, int64(len(complete))); err != nil {
			return fmt.Errorf("cutting a torn entry: %w", err)
		}
	}
	if err := l.openFile(int64(len(complete))); err != nil {
		return err
	}
	if len(torn) == 0 {
		return nil
	}
	sum := sha256.Sum256(torn)
	return l.writeNow(Entry{Kind: KindRecover,
		Message: fmt.Sprintf("dropped %d bytes of an incomplete entry at the end of the log (sha256 %x)", len(torn), sum)})
}

// continueRotated picks up the chain from path.1 when the live file holds
// no complete entry: a rotation whose mark could not be written (or a
// crash right after it) leaves an empty live file.
func (l *Log) continueRotated() error {
	b, err := os.ReadFile(l.path + ".1")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	complete := b[:bytes.LastIndexByte(b, '\n')+1]
	if len(complete) == 0 {
		return nil
	}
	e, err := lastEntry(complete)
	if err != nil {
		if l.opts.Strict {
			return fmt.Errorf("rotated file's last entry is unreadable (%v): refusing to continue a damaged chain", err)
		}
		return nil
	}
	l.seq, l.last = e.Seq+1, e.Hash
	return nil
}

// setAside handles a last complete entry that does not verify. That is
// damage, not a crash: a strict log refuses to continue; otherwise the
// file is kept for inspection as path.1 and a new chain starts with a
// reset entry, which Verify reports.
func (l *Log) setAside(cause error) error {
	if l.opts.Strict {
		return fmt.Errorf("last entry is unreadable (%v): refusing to continue a damaged chain", cause)
	}
	if err := l.shift(); err != nil {
		return err
	}
	if err := l.openFile(0); err != nil {
		return err
	}
	return l.writeNow(Entry{Kind: KindReset, Message: "previous log ended in an unreadable entry: " + cause.Error()})
}

// lastEntry verifies and decodes the last line of complete, which ends
// with a newline.
func lastEntry(complete []byte) (Entry, error) {
	line := complete[:len(complete)-1]
	line = line[bytes.LastIndexByte(line, '\n')+1:]
	return checkLine(line)
}
