package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// Entry names in real layers are not always relative. containerd cleans the
// name and resolves it under the layer root (pkg/archive/tar.go:236
// filepath.Clean(hdr.Name), :253 fs.RootPath(root, ppath), commit 301026e5),
// and so does the Rust tar crate image-rs unpacks with (src/entry.rs:409:
// RootDir and CurDir components are skipped, commit 2349b494). umoci insert
// IMAGE DIR / writes a "/" entry and "/bin/sh"-style names.
func TestUnpackRootsAbsoluteAndDotNames(t *testing.T) {
	testenv.RequiresRoot(t)
	data := mkTar(t, []ent{
		{name: "/", typ: tar.TypeDir, mode: 0o750},
		{name: "/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "/bin/sh", typ: tar.TypeReg, body: "shell", mode: 0o755},
		// containerd roots hard-link targets the same way
		// (pkg/archive/tar.go:374 hardlinkRootPath, :782).
		{name: "/bin/ash", typ: tar.TypeLink, link: "/bin/sh"},
		{name: "./etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "./etc/hostname", typ: tar.TypeReg, body: "box"},
		{name: "./etc/link", typ: tar.TypeLink, link: "./etc/hostname"},
		{name: "//usr///lib/x", typ: tar.TypeReg, body: "x"},
		{name: "/usr/bin/env", typ: tar.TypeSymlink, link: "/bin/sh"},
	}, true)
	dir, err := unpackInto(t, data, Options{})
	if err != nil {
		t.Fatalf("layer with absolute and ./ names refused: %v", err)
	}
	for name, want := range map[string]string{"bin/sh": "shell", "bin/ash": "shell", "etc/hostname": "box", "etc/link": "box", "usr/lib/x": "x"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", name, b, err, want)
		}
	}
	assertSameInode(t, dir, "bin/sh", "bin/ash")
	assertSameInode(t, dir, "etc/hostname", "etc/link")
	// Symlink targets stay as written: they are resolved in the container.
	if l, err := os.Readlink(filepath.Join(dir, "usr/bin/env")); err != nil || l != "/bin/sh" {
		t.Errorf("symlink: %q %v", l, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("the / entry's mode was not applied to the layer root: %v %v", fi.Mode(), err)
	}
}

// Shapes archive/tar writes without complaint and other unpackers accept.
func TestUnpackOddButValidShapes(t *testing.T) {
	testenv.RequiresRoot(t)
	cases := []struct {
		name  string
		ents  []ent
		check func(t *testing.T, dir string)
	}{
		{
			name: "entry before its parent directory",
			ents: []ent{
				{name: "a/b/c", typ: tar.TypeReg, body: "c"},
				{name: "a/", typ: tar.TypeDir, mode: 0o700, uid: 1000},
				{name: "a/b/", typ: tar.TypeDir, mode: 0o711},
			},
			check: func(t *testing.T, dir string) {
				assertFile(t, dir, "a/b/c", "c")
				assertMode(t, dir, "a", 0o700, 1000)
				assertMode(t, dir, "a/b", 0o711, 0)
			},
		},
		{
			name: "duplicate file, last wins",
			ents: []ent{{name: "f", typ: tar.TypeReg, body: "one"}, {name: "f", typ: tar.TypeReg, body: "two", mode: 0o600}},
			check: func(t *testing.T, dir string) {
				assertFile(t, dir, "f", "two")
				assertMode(t, dir, "f", 0o600, 0)
			},
		},
		{
			name: "duplicate directory, last metadata wins, contents kept",
			ents: []ent{{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "d/x", typ: tar.TypeReg, body: "x"}, {name: "d/", typ: tar.TypeDir, mode: 0o700, uid: 7}},
			check: func(t *testing.T, dir string) {
				assertFile(t, dir, "d/x", "x")
				assertMode(t, dir, "d", 0o700, 7)
			},
		},
		{
			name: "symlink replaced by file",
			ents: []ent{{name: "s", typ: tar.TypeSymlink, link: "/etc/shadow"}, {name: "s", typ: tar.TypeReg, body: "plain"}},
			check: func(t *testing.T, dir string) {
				if fi, err := os.Lstat(filepath.Join(dir, "s")); err != nil || !fi.Mode().IsRegular() {
					t.Fatalf("s: %v %v", fi, err)
				}
				assertFile(t, dir, "s", "plain")
			},
		},
		{
			name: "file replaced by symlink",
			ents: []ent{{name: "s", typ: tar.TypeReg, body: "plain"}, {name: "s", typ: tar.TypeSymlink, link: "target"}},
			check: func(t *testing.T, dir string) {
				if l, err := os.Readlink(filepath.Join(dir, "s")); err != nil || l != "target" {
					t.Fatalf("s: %q %v", l, err)
				}
			},
		},
		{
			name:  "file replaced by directory",
			ents:  []ent{{name: "p", typ: tar.TypeReg, body: "plain"}, {name: "p/", typ: tar.TypeDir, mode: 0o755}, {name: "p/q", typ: tar.TypeReg, body: "q"}},
			check: func(t *testing.T, dir string) { assertFile(t, dir, "p/q", "q") },
		},
		{
			name: "hard links within the layer",
			ents: []ent{
				{name: "usr/bin/a", typ: tar.TypeReg, body: "prog", mode: 0o755},
				{name: "usr/bin/b", typ: tar.TypeLink, link: "usr/bin/a"},
				{name: "sbin/c", typ: tar.TypeLink, link: "usr/bin/a"},
				// A repeated hard link to the same target is a no-op.
				{name: "usr/bin/b", typ: tar.TypeLink, link: "usr/bin/a"},
				// A hard link to a symlink links the symlink itself.
				{name: "l", typ: tar.TypeSymlink, link: "/nowhere"},
				{name: "l2", typ: tar.TypeLink, link: "l"},
			},
			check: func(t *testing.T, dir string) {
				assertSameInode(t, dir, "usr/bin/a", "usr/bin/b")
				assertSameInode(t, dir, "usr/bin/a", "sbin/c")
				if l, err := os.Readlink(filepath.Join(dir, "l2")); err != nil || l != "/nowhere" {
					t.Errorf("l2: %q %v", l, err)
				}
			},
		},
		{
			name: "hard link replaced by a file leaves its target alone",
			ents: []ent{{name: "a", typ: tar.TypeReg, body: "a"}, {name: "b", typ: tar.TypeLink, link: "a"}, {name: "b", typ: tar.TypeReg, body: "b"}},
			check: func(t *testing.T, dir string) {
				assertFile(t, dir, "a", "a")
				assertFile(t, dir, "b", "b")
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, end := range []bool{true, false} {
				dir, err := unpackInto(t, mkTar(t, c.ents, end), Options{})
				if err != nil {
					t.Fatalf("refused (end blocks %v): %v", end, err)
				}
				c.check(t, dir)
			}
		})
	}
}

// Rooting absolute names must not open new ways out: every escape the
// relative spelling refuses is refused in the absolute one too.
func TestUnpackAbsoluteEscapesStillRefused(t *testing.T) {
	testenv.RequiresRoot(t)
	cases := map[string][]ent{
		"absolute dotdot":        {{name: "/../escaped", typ: tar.TypeReg, body: "x"}},
		"absolute inner dotdot":  {{name: "/a/../../escaped", typ: tar.TypeReg, body: "x"}},
		"dot dotdot":             {{name: "./../escaped", typ: tar.TypeReg, body: "x"}},
		"absolute through link":  {{name: "/evil", typ: tar.TypeSymlink, link: "/"}, {name: "/evil/escaped", typ: tar.TypeReg, body: "x"}},
		"hardlink abs dotdot":    {{name: "h", typ: tar.TypeLink, link: "/../outside/secret"}},
		"hardlink to the root":   {{name: "h", typ: tar.TypeLink, link: "/"}},
		"hardlink through link":  {{name: "/evil", typ: tar.TypeSymlink, link: "../outside"}, {name: "h", typ: tar.TypeLink, link: "/evil/secret"}},
		"root as a file":         {{name: "/.", typ: tar.TypeReg, body: "x"}},
		"root as a symlink":      {{name: "/.", typ: tar.TypeSymlink, link: "/tmp"}},
		"absolute whiteout link": {{name: "/evil", typ: tar.TypeSymlink, link: "../outside"}, {name: "/evil/.wh.secret", typ: tar.TypeReg}},
	}
	for name, ents := range cases {
		t.Run(name, func(t *testing.T) {
			base, dir := trapTree(t)
			_, err := Unpack(context.Background(), bytes.NewReader(mkTar(t, ents, true)), dir, Options{})
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("got %v, want ErrUnsafe", err)
			}
			assertOnly(t, base, map[string]bool{"outside": true, "outside/secret": true, "layer": true})
		})
	}
}

func assertFile(t *testing.T, dir, name, want string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
		t.Errorf("%s: %q %v, want %q", name, b, err, want)
	}
}

func assertMode(t *testing.T, dir, name string, mode uint32, uid uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != mode || st.Uid != uid {
		t.Errorf("%s: mode %o uid %d, want %o uid %d", name, st.Mode&0o7777, st.Uid, mode, uid)
	}
}

func assertSameInode(t *testing.T, dir, a, b string) {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, a), &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(filepath.Join(dir, b), &sb); err != nil {
		t.Fatal(err)
	}
	if sa.Ino != sb.Ino {
		t.Errorf("%s and %s are not one inode", a, b)
	}
}
