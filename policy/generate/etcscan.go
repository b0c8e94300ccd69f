package generate

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// maxEtcFile bounds /etc/passwd and /etc/group.
const maxEtcFile = 1 << 20

// etcFile is what is known of one file while layers are read top-down.
type etcFile struct {
	done bool
	text string
}

// etcScan finds /etc/passwd and /etc/group in layers read from the top:
// the first layer that has the file, deletes it (whiteout) or hides the
// lower /etc (opaque directory, or /etc itself deleted) settles it.
type etcScan struct {
	passwd, group etcFile
}

func (s *etcScan) settled() bool { return s.passwd.done && s.group.done }

// layer reads one layer (gzip, zstd or plain tar) and updates the scan.
// It returns as soon as both files are settled, without reading the rest.
func (s *etcScan) layer(r io.Reader) error {
	br := bufio.NewReader(r)
	head, _ := br.Peek(4)
	var tr *tar.Reader
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		tr = tar.NewReader(zr)
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		defer zr.Close()
		tr = tar.NewReader(zr)
	default:
		tr = tar.NewReader(br)
	}
	// Settling happens at the end of the layer for opaque directories: a
	// layer may hold both the opaque marker and a new file.
	opaque := false
	for !s.settled() {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		name := path.Clean("/" + h.Name)
		switch name {
		case "/etc/passwd":
			if err := s.passwd.read(h, tr); err != nil {
				return err
			}
		case "/etc/group":
			if err := s.group.read(h, tr); err != nil {
				return err
			}
		case "/etc/.wh.passwd":
			s.passwd.done = true
		case "/etc/.wh.group":
			s.group.done = true
		case "/etc/.wh..wh..opq", "/.wh.etc":
			opaque = true
		}
	}
	if opaque {
		s.passwd.done, s.group.done = true, true
	}
	return nil
}

// read settles f from a tar entry. Only a regular file carries content;
// anything else at that path (a link, a directory) means no usable file.
func (f *etcFile) read(h *tar.Header, r io.Reader) error {
	if f.done {
		return nil
	}
	f.done = true
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	if h.Size > maxEtcFile {
		return fmt.Errorf("%s of %d bytes", h.Name, h.Size)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxEtcFile))
	if err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	f.text = string(b)
	return nil
}

// passwdEntry is one /etc/passwd line.
type passwdEntry struct {
	name     string
	uid, gid int64
}

// lookupUser finds a user by name or numeric id in passwd text.
func lookupUser(passwd, user string) (passwdEntry, bool) {
	for _, line := range strings.Split(passwd, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		var uid, gid int64
		if _, err := fmt.Sscan(f[2], &uid); err != nil {
			continue
		}
		if _, err := fmt.Sscan(f[3], &gid); err != nil {
			continue
		}
		if f[0] == user || f[2] == user {
			return passwdEntry{name: f[0], uid: uid, gid: gid}, true
		}
	}
	return passwdEntry{}, false
}

// lookupGroup finds a group's id by name in group text.
func lookupGroup(group, name string) (int64, bool) {
	for _, line := range strings.Split(group, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || f[0] != name {
			continue
		}
		var gid int64
		if _, err := fmt.Sscan(f[2], &gid); err == nil {
			return gid, true
		}
	}
	return 0, false
}

// memberGroups lists the ids of the groups naming user as a member.
func memberGroups(group, user string) []int64 {
	var out []int64
	for _, line := range strings.Split(group, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		for _, m := range strings.Split(f[3], ",") {
			if m == user && user != "" {
				var gid int64
				if _, err := fmt.Sscan(f[2], &gid); err == nil {
					out = append(out, gid)
				}
			}
		}
	}
	return out
}
