package copyfile

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// fixture is a temp tree: root is the shared directory, outside/secret is
// what an escape would overwrite, and root holds links an attacker planted
// with earlier requests.
type fixture struct {
	dir, root, outside string
	c                  *Copier
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, root: filepath.Join(dir, "shared", "containers"), outside: filepath.Join(dir, "outside")}
	for _, d := range []string{f.root, f.outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(f.outside, "secret"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"up": "../../outside", "abs": f.outside, "dot": "."} {
		if err := os.Symlink(target, filepath.Join(f.root, name)); err != nil {
			t.Fatal(err)
		}
	}
	f.c = New(f.root, 1<<20)
	return f
}

// untouched checks that nothing outside root changed.
func (f *fixture) untouched(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.outside, "secret"))
	if err != nil || string(b) != "keep" {
		t.Fatalf("outside/secret changed: %q %v", b, err)
	}
	for dir, want := range map[string]int{f.outside: 1, f.dir: 2, filepath.Dir(f.root): 1} {
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != want {
			t.Fatalf("%s: %d entries (want %d) %v", dir, len(ents), want, err)
		}
	}
}

func (f *fixture) copy(path string, mode uint32, size, off int64, data []byte) error {
	return f.c.Copy(context.Background(), &Request{
		Path: path, FileMode: mode, DirMode: 0o750, FileSize: size, Offset: off, Data: data, UID: -1, GID: -1,
	})
}

func TestCopyRegularChunked(t *testing.T) {
	f := newFixture(t)
	p := filepath.Join(f.root, "cid", "volumes", "cfg", "app.conf")
	if err := f.copy(p, unix.S_IFREG|0o640, 10, 0, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("file visible before its last chunk: %v", err)
	}
	if err := f.copy(p, unix.S_IFREG|0o640, 10, 5, []byte("world")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "helloworld" {
		t.Fatalf("content %q %v", b, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode())
	}
	pst, _ := os.Stat(filepath.Dir(p))
	if pst.Mode().Perm() != 0o750 {
		t.Fatalf("parent mode %v", pst.Mode())
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	// Replacing keeps the old content visible until the new one is whole.
	if err := f.copy(p, 0o644, 3, 0, []byte("ne")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "helloworld" {
		t.Fatalf("old content replaced early: %q", b)
	}
	if err := f.copy(p, 0o644, 3, 2, []byte("w")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Fatalf("content %q", b)
	}
	// Empty file in one request.
	e := filepath.Join(f.root, "cid", "empty")
	if err := f.copy(e, 0o600, 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(e); err != nil || st.Size() != 0 {
		t.Fatalf("empty file: %v %v", st, err)
	}
	f.untouched(t)
}

func TestCopyOwnership(t *testing.T) {
	f := newFixture(t)
	p := filepath.Join(f.root, "cid", "owned")
	err := f.c.Copy(context.Background(), &Request{Path: p, FileMode: 0o600, DirMode: 0o755, FileSize: 1, Data: []byte("x"), UID: 1234, GID: 5678})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil || st.Uid != 1234 || st.Gid != 5678 {
		t.Fatalf("owner %d:%d %v", st.Uid, st.Gid, err)
	}
	if err := unix.Stat(filepath.Dir(p), &st); err != nil || st.Uid != 1234 {
		t.Fatalf("parent owner %d %v", st.Uid, err)
	}
}

func TestCopyDirAndSymlink(t *testing.T) {
	f := newFixture(t)
	d := filepath.Join(f.root, "cid", "vol")
	if err := f.copy(d, unix.S_IFDIR|0o1777, 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(d)
	if err != nil || !st.IsDir() || st.Mode()&os.ModeSticky == 0 || st.Mode().Perm() != 0o777 {
		t.Fatalf("dir %v %v", st, err)
	}
	// Again: an existing directory is kept with its content.
	if err := f.copy(filepath.Join(d, "x"), 0o644, 1, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := f.copy(d, unix.S_IFDIR|0o755, 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, "x")); err != nil {
		t.Fatal(err)
	}
	// Config map layout: ..data -> ..2024, key -> ..data/key.
	if err := f.copy(filepath.Join(d, "..2024", "key"), 0o644, 1, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := f.copy(filepath.Join(d, "..data"), unix.S_IFLNK|0o777, 0, 0, []byte("..2024")); err != nil {
		t.Fatal(err)
	}
	if err := f.copy(filepath.Join(d, "key"), unix.S_IFLNK|0o777, 0, 0, []byte("..data/key")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(d, "key")); err != nil || string(b) != "v" {
		t.Fatalf("through links: %q %v", b, err)
	}
	abs := filepath.Join(f.root, "cid", "absolute")
	if err := f.copy(abs, unix.S_IFLNK, 0, 0, []byte(filepath.Join(d, "key"))); err != nil {
		t.Fatal(err)
	}
	// A regular file replaces the symlink itself, not what it points to.
	if err := f.copy(filepath.Join(d, "key"), 0o644, 3, 0, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(d, "..2024", "key")); string(b) != "v" {
		t.Fatalf("write followed the symlink: %q", b)
	}
	f.untouched(t)
}

func TestCopyRejects(t *testing.T) {
	f := newFixture(t)
	r := f.root
	big := make([]byte, MaxChunk+1)
	cases := []struct {
		name  string
		path  string
		mode  uint32
		size  int64
		off   int64
		data  []byte
		class func(error) bool
	}{
		{"dotdot", r + "/cid/../../../outside/secret", 0o644, 1, 0, []byte("x"), errdefs.IsInvalidArgument},
		{"outside abs", f.outside + "/secret", 0o644, 1, 0, []byte("x"), errdefs.IsPermissionDenied},
		{"prefix trick", r + "x/secret", 0o644, 1, 0, []byte("x"), errdefs.IsPermissionDenied},
		{"relative", "cid/file", 0o644, 1, 0, []byte("x"), errdefs.IsInvalidArgument},
		{"root itself", r, unix.S_IFDIR | 0o755, 0, 0, nil, errdefs.IsInvalidArgument},
		{"empty", "", 0o644, 0, 0, nil, errdefs.IsInvalidArgument},
		{"symlinked parent", r + "/up/secret", 0o644, 1, 0, []byte("x"), errdefs.IsPermissionDenied},
		{"abs symlinked parent", r + "/abs/secret", 0o644, 1, 0, []byte("x"), errdefs.IsPermissionDenied},
		{"dot link parent", r + "/dot/x", 0o644, 1, 0, []byte("x"), errdefs.IsPermissionDenied},
		{"symlinked parent mkdir", r + "/abs/newdir", unix.S_IFDIR | 0o755, 0, 0, nil, errdefs.IsPermissionDenied},
		{"escaping symlink", r + "/cid/l", unix.S_IFLNK, 0, 0, []byte("../../../outside"), errdefs.IsPermissionDenied},
		{"escaping abs symlink", r + "/cid/l", unix.S_IFLNK, 0, 0, []byte("/etc/shadow"), errdefs.IsPermissionDenied},
		{"dotdot via dot link", r + "/cid/l", unix.S_IFLNK, 0, 0, []byte("../dot/.."), errdefs.IsPermissionDenied},
		{"empty symlink", r + "/cid/l", unix.S_IFLNK, 0, 0, nil, errdefs.IsInvalidArgument},
		{"fifo", r + "/cid/p", unix.S_IFIFO | 0o644, 0, 0, nil, errdefs.IsInvalidArgument},
		{"device", r + "/cid/dev", unix.S_IFBLK | 0o644, 0, 0, nil, errdefs.IsInvalidArgument},
		{"oversized chunk", r + "/cid/big", 0o644, int64(len(big)), 0, big, errdefs.IsInvalidArgument},
		{"oversized file", r + "/cid/big", 0o644, 2 << 20, 0, []byte("x"), errdefs.IsInvalidArgument},
		{"negative size", r + "/cid/f", 0o644, -1, 0, nil, errdefs.IsInvalidArgument},
		{"negative offset", r + "/cid/f", 0o644, 5, -1, []byte("x"), errdefs.IsInvalidArgument},
		{"past size", r + "/cid/f", 0o644, 5, 3, []byte("xyz"), errdefs.IsInvalidArgument},
		{"no upload", r + "/cid/f", 0o644, 5, 2, []byte("x"), errdefs.IsInvalidArgument},
		{"NUL", r + "/cid/f\x00", 0o644, 1, 0, []byte("x"), errdefs.IsInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := f.copy(c.path, c.mode, c.size, c.off, c.data)
			if err == nil || !c.class(err) {
				t.Fatalf("err = %v", err)
			}
			f.untouched(t)
		})
	}
	if err := f.c.Copy(context.Background(), nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("nil request: %v", err)
	}
	if err := f.c.Copy(context.Background(), &Request{Path: r + "/cid/u", UID: -2, FileSize: 0}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("uid -2: %v", err)
	}
	// A chunk at the wrong offset of a real upload.
	p := r + "/cid/chunked"
	if err := f.copy(p, 0o644, 6, 0, []byte("ab")); err != nil {
		t.Fatal(err)
	}
	if err := f.copy(p, 0o644, 6, 4, []byte("ef")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("skipped chunk: %v", err)
	}
	if err := f.copy(p, 0o644, 6, 2, []byte("cdef")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, []byte("abcdef")) {
		t.Fatalf("content %q", b)
	}
}

// FuzzCopyFile throws arbitrary paths, types and chunks at a tree with
// planted symlinks: nothing outside the root may ever change, and nothing
// may panic.
func FuzzCopyFile(f *testing.F) {
	f.Add("cid/a", uint32(0o644), int64(1), int64(0), []byte("x"), false)
	f.Add("../outside/secret", uint32(0o644), int64(1), int64(0), []byte("x"), false)
	f.Add("up/secret", uint32(0o644), int64(1), int64(0), []byte("x"), false)
	f.Add("abs/x", uint32(unix.S_IFDIR|0o755), int64(0), int64(0), []byte(nil), false)
	f.Add("cid/l", uint32(unix.S_IFLNK), int64(0), int64(0), []byte("../../outside"), false)
	f.Add("dot/../../outside/secret", uint32(0o644), int64(1), int64(0), []byte("x"), true)
	f.Fuzz(func(t *testing.T, rel string, mode uint32, size, off int64, data []byte, raw bool) {
		fx := newFixture(t)
		p := fx.root + "/" + rel
		if raw {
			p = rel
		}
		_ = fx.copy(p, mode, size, off, data)
		// A second request through whatever the first created.
		_ = fx.copy(p+"/x", 0o644, 1, 0, []byte("y"))
		fx.untouched(t)
	})
}
