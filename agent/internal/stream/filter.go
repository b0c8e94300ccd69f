package stream

import (
	"errors"
	"fmt"
)

// An encrypted exec's stdin is not written to the process as the host
// sends it: a filter opens it first (sealedlog.StdinOpener), and only the
// plaintext it returns reaches the process. The filter's first error ends
// the session: the process's stdin is left open, never closed, so a
// command reading it cannot mistake a cut input for a clean end of file,
// and the owner's callback (which kills the process) runs.

// StdinFilter turns what WriteStdin carries into the process's input. It
// is called with one write at a time.
type StdinFilter interface {
	// Write returns the plaintext now ready and whether the input ended.
	Write(p []byte) (plain []byte, eof bool, err error)
	// Close is the host closing stdin; an error if that is too early.
	Close() error
}

type stdinFilter struct {
	f      StdinFilter
	onFail func(error)
	err    error
}

var errFilterLate = errors.New("stream: stdin filtered after it was written")

// FilterStdin makes every later write go through f; onFail is called once,
// with the filter's first error. It must be called before the first write
// (the sandbox holds stdio requests back until it has), and not on a
// terminal.
func (s *IO) FilterStdin(f StdinFilter, onFail func(error)) error {
	if s.terminal {
		return errors.New("stream: a terminal's input cannot be filtered")
	}
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	if s.written || s.filter != nil || s.stdin == nil {
		return errFilterLate
	}
	s.filter = &stdinFilter{f: f, onFail: onFail}
	return nil
}

// writeFiltered is Write for a filtered stdin. It is called with stdinMu
// held and releases it.
func (s *IO) writeFiltered(data []byte) (int, error) {
	sf := s.filter
	if sf.err != nil {
		s.stdinMu.Unlock()
		return 0, sf.err
	}
	plain, eof, err := sf.f.Write(data)
	if len(plain) > 0 && s.stdin != nil {
		if _, werr := s.stdin.Write(plain); werr != nil && err == nil {
			err = fmt.Errorf("write stdin: %w", werr)
		}
	}
	if err == nil && eof && s.stdin != nil {
		err = s.stdin.Close()
		s.stdin = nil
	}
	return len(data), s.failLocked(err)
}

// closeFiltered is CloseStdin for a filtered stdin; called with stdinMu
// held, it releases it.
func (s *IO) closeFiltered() error {
	sf := s.filter
	if sf.err != nil {
		s.stdinMu.Unlock()
		return sf.err
	}
	return s.failLocked(sf.f.Close())
}

// failLocked records err as the end of the session, releases stdinMu and
// runs the callback outside it.
func (s *IO) failLocked(err error) error {
	sf := s.filter
	if err == nil {
		s.stdinMu.Unlock()
		return nil
	}
	sf.err = err
	s.stdinMu.Unlock()
	if sf.onFail != nil {
		sf.onFail(err)
	}
	return err
}

// closeStdinPipe closes the process's stdin at teardown, filtered or not.
func (s *IO) closeStdinPipe() {
	if s.terminal {
		_ = s.CloseStdin() // as before: the end-of-file character
		return
	}
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	if s.stdin != nil {
		s.stdin.Close()
		s.stdin = nil
	}
}
