package decisionlog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// hashSuffixLen is len(`,"hash":"` + 64 hex + `"}`).
const hashSuffixLen = 9 + 64 + 2

// checkLine verifies one line's own hash and returns it decoded.
func checkLine(line []byte) (Entry, error) {
	var e Entry
	if len(line) < hashSuffixLen+2 || !bytes.HasSuffix(line, []byte(`"}`)) ||
		!bytes.Equal(line[len(line)-hashSuffixLen:len(line)-hashSuffixLen+9], []byte(`,"hash":"`)) {
		return e, errors.New("entry does not end with its hash")
	}
	hash := string(line[len(line)-hashSuffixLen+9 : len(line)-2])
	body := append(bytes.Clone(line[:len(line)-hashSuffixLen]), '}')
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != hash {
		return e, errors.New("entry hash does not match its content")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("entry is not valid JSON: %w", err)
	}
	return e, nil
}

// Result summarises a verified chain.
type Result struct {
	Entries  int
	FirstSeq uint64
	LastHash string
	// Continued is true when the first file starts after a rotated file
	// that was not given (its chain begins mid-way); Missing then says
	// which history is not in the files.
	Continued bool
	Missing   string
	// Resets names each entry that starts a new chain because the file
	// before it ended in a damaged entry: history before it is not
	// covered by the chain.
	Resets []string
	// Recovered names each entry recording a torn entry cut off at start.
	Recovered []string
}

// Source is one file of a chain, oldest first.
type Source struct {
	Name string
	R    io.Reader
}

// maxLine bounds one entry when verifying.
const maxLine = 16 << 20

// Verify checks that the sources form one unbroken chain: every line carries
// its correct hash, links to the line before (across files too) and the
// sequence numbers increase by one. The first entry must start at the
// genesis hash, unless it is a rotate entry whose predecessor file was not
// given (Continued, Missing). A file that ends in the middle of a line is
// truncated and fails. Errors name the file and line.
func Verify(srcs []Source) (Result, error) {
	var r Result
	prev := ""
	var seq uint64
	for _, s := range srcs {
		br := bufio.NewReaderSize(s.R, 64<<10)
		n := 0
		for {
			line, err := readLine(br)
			if err == io.EOF {
				break
			}
			if err != nil {
				return r, fmt.Errorf("%s:%d: %w", s.Name, n+1, err)
			}
			n++
			if line[len(line)-1] != '\n' {
				return r, fmt.Errorf("%s: truncated: the file ends in the middle of entry %d (%d bytes after the last complete entry)", s.Name, n, len(line))
			}
			e, err := checkLine(line[:len(line)-1])
			if err != nil {
				return r, fmt.Errorf("%s:%d: %w", s.Name, n, err)
			}
			at := fmt.Sprintf("%s:%d", s.Name, n)
			switch {
			case r.Entries == 0:
				r.FirstSeq = e.Seq
				if e.Prev != Genesis {
					if e.Kind != KindRotate {
						return r, fmt.Errorf("%s: the log is truncated at its start: the first entry (seq %d) follows %s, which is not in the files given", at, e.Seq, e.Prev)
					}
					r.Continued = true
					r.Missing = fmt.Sprintf("history before seq %d is not in the files given: %s %s (chain head %s)", e.Seq, at, e.Message, e.Prev)
				}
			case e.Kind == KindReset && e.Prev == Genesis:
				// A new chain after an unreadable tail; Open marks it so.
			case e.Prev != prev:
				return r, fmt.Errorf("%s: chain broken: prev %s, want %s", at, e.Prev, prev)
			case e.Seq != seq+1:
				return r, fmt.Errorf("%s: sequence %d follows %d", at, e.Seq, seq)
			}
			if e.Kind == KindReset && e.Prev == Genesis {
				r.Resets = append(r.Resets, at+": "+e.Message)
			}
			if e.Kind == KindRecover {
				r.Recovered = append(r.Recovered, at+": "+e.Message)
			}
			prev, seq = e.Hash, e.Seq
			r.Entries++
		}
		if n == 0 {
			return r, fmt.Errorf("%s: empty", s.Name)
		}
	}
	r.LastHash = prev
	return r, nil
}

// readLine returns the next line with its newline, or without one at the
// end of the input; io.EOF when nothing is left.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLine {
			return nil, fmt.Errorf("entry longer than %d bytes", maxLine)
		}
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}
