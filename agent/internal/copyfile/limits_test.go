package copyfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// The sandbox's CopyFile total is bounded in bytes (uploads in progress
// included) and in entries; a refusal keeps everything already stored, and
// space freed by others is found again.
func TestCopyBounds(t *testing.T) {
	f := newFixture(t) // root already holds 3 symlinks: 3 entries, no file bytes
	f.c = NewLimited(f.root, Limits{MaxFileSize: 1 << 20, MaxTotalBytes: 10000, MaxFiles: 8})
	data := func(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }
	a, b, c := filepath.Join(f.root, "cid", "a"), filepath.Join(f.root, "cid", "b"), filepath.Join(f.root, "cid", "c")
	for _, p := range []string{a, b} {
		if err := f.copy(p, 0o644, 4000, 0, data(4000, 'x')); err != nil {
			t.Fatal(err)
		}
	}
	err := f.copy(c, 0o644, 4000, 0, data(4000, 'y'))
	if !errdefs.IsResourceExhausted(err) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("over the byte limit: %v", err)
	}
	// The first chunk of a large upload reserves its whole size.
	err = f.copy(c, 0o644, 4000, 0, data(10, 'y'))
	if !errdefs.IsResourceExhausted(err) {
		t.Fatalf("first chunk over the byte limit: %v", err)
	}
	// Replacing needs room for both copies until the rename; a refused
	// replacement keeps the old file.
	err = f.copy(a, 0o644, 3000, 0, data(3000, 'z'))
	if !errdefs.IsResourceExhausted(err) {
		t.Fatalf("replacement over the limit: %v", err)
	}
	for _, p := range []string{a, b} {
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data(4000, 'x')) {
			t.Fatalf("%s lost after a refusal: %d bytes %v", p, len(got), err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(a)); len(ents) != 2 {
		t.Fatalf("refused uploads left files: %v", ents)
	}
	// A smaller replacement fits and frees the old size.
	if err := f.copy(a, 0o644, 1000, 0, data(1000, 'z')); err != nil {
		t.Fatal(err)
	}
	if err := f.copy(c, 0o644, 4000, 0, data(4000, 'y')); err != nil {
		t.Fatalf("room freed by the replacement not reused: %v", err)
	}
	// Entries: 3 links, cid, a, b, c = 7 of 8.
	if err := f.copy(filepath.Join(f.root, "cid", "d"), unix.S_IFDIR|0o755, 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	err = f.copy(filepath.Join(f.root, "cid", "d", "e"), unix.S_IFLNK|0o777, 0, 0, []byte("a"))
	if !errdefs.IsResourceExhausted(err) || !strings.Contains(err.Error(), "entries") {
		t.Fatalf("over the entry limit: %v", err)
	}
	err = f.copy(filepath.Join(f.root, "new", "deep", "f"), 0o644, 1, 0, []byte("1"))
	if !errdefs.IsResourceExhausted(err) {
		t.Fatalf("parents over the entry limit: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(f.root, "new")); !os.IsNotExist(err) {
		t.Fatalf("refused request left a parent directory: %v", err)
	}
	// A file that could never fit is a bad request.
	err = f.copy(filepath.Join(f.root, "cid", "huge"), 0o644, 20000, 0, data(10, 'h'))
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("file larger than the sandbox total: %v", err)
	}
	// Space freed outside CopyFile (the container's directory removed) is
	// counted again.
	if err := os.RemoveAll(filepath.Join(f.root, "cid")); err != nil {
		t.Fatal(err)
	}
	if err := f.copy(filepath.Join(f.root, "cid2", "a"), 0o644, 9000, 0, data(9000, 'n')); err != nil {
		t.Fatalf("freed space not reused: %v", err)
	}
	f.untouched(t)
}
