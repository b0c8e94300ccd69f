package safepath

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tree makes outer/{secret, root/{dir/file, file, in -> dir, out -> ../secret-dir, abs -> /}}
// and returns root with an O_PATH descriptor on it.
func tree(t testing.TB) (string, int) {
	t.Helper()
	outer := t.TempDir()
	root := filepath.Join(outer, "root")
	for _, d := range []string{filepath.Join(outer, "secret-dir"), filepath.Join(root, "dir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(outer, "secret-dir", "f"), filepath.Join(root, "dir", "file"), filepath.Join(root, "file")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"in": "dir", "out": "../secret-dir", "abs": "/"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return root, fd
}

func fdPath(t testing.TB, fd int) string {
	t.Helper()
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func inside(p, root string) bool { return p == root || strings.HasPrefix(p, root+"/") }

// Both the openat2 path and the fallback walk give the same answers.
func TestOpenBeneath(t *testing.T) {
	root, rootFD := tree(t)
	cases := []struct {
		rel   string
		flags int
		want  error // nil: opens root/rel
	}{
		{"", unix.O_PATH, nil},
		{".", unix.O_RDONLY | unix.O_DIRECTORY, nil},
		{"dir", unix.O_RDONLY | unix.O_DIRECTORY, nil},
		{"dir/file", unix.O_RDONLY, nil},
		{"file", unix.O_PATH, nil},
		{"in", unix.O_RDONLY | unix.O_DIRECTORY, unix.ELOOP},
		{"in", unix.O_PATH, unix.ELOOP},
		{"in", unix.O_RDONLY, unix.ELOOP},
		{"in/file", unix.O_RDONLY, unix.ELOOP},
		{"out/f", unix.O_RDONLY, unix.ELOOP},
		{"abs/etc", unix.O_PATH, unix.ELOOP},
		{"../root/file", unix.O_RDONLY, unix.EXDEV},
		{"dir/../file", unix.O_RDONLY, unix.EXDEV},
		{"/etc", unix.O_PATH, unix.EXDEV},
		{"file/x", unix.O_PATH, unix.ENOTDIR},
		{"file", unix.O_RDONLY | unix.O_DIRECTORY, unix.ENOTDIR},
		{"missing", unix.O_PATH, unix.ENOENT},
	}
	for _, withOpenat2 := range []bool{true, false} {
		for _, c := range cases {
			fd, err := openBeneath(rootFD, c.rel, c.flags, withOpenat2)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Errorf("openat2=%v %q: got %v, want %v", withOpenat2, c.rel, err, c.want)
				}
				if err == nil {
					unix.Close(fd)
				}
				continue
			}
			if err != nil {
				t.Errorf("openat2=%v %q: %v", withOpenat2, c.rel, err)
				continue
			}
			if got, want := fdPath(t, fd), filepath.Join(root, c.rel); got != want {
				t.Errorf("openat2=%v %q opened %s, want %s", withOpenat2, c.rel, got, want)
			}
			unix.Close(fd)
		}
	}
}

func TestMkdirBeneath(t *testing.T) {
	for _, withOpenat2 := range []bool{true, false} {
		root, rootFD := tree(t)
		old := unix.Umask(0o077)
		fd, created, err := mkdirBeneath(rootFD, "dir/a/b", 0o751, nil, withOpenat2)
		unix.Umask(old)
		if err != nil {
			t.Fatalf("openat2=%v: %v", withOpenat2, err)
		}
		if got := fdPath(t, fd); got != filepath.Join(root, "dir/a/b") {
			t.Errorf("opened %s", got)
		}
		unix.Close(fd)
		if strings.Join(created, ",") != "dir/a,dir/a/b" {
			t.Errorf("created %q", created)
		}
		if st, err := os.Stat(filepath.Join(root, "dir/a/b")); err != nil || st.Mode().Perm() != 0o751 {
			t.Errorf("mode of a created directory: %v %v (the umask must not narrow it)", st.Mode(), err)
		}
		for _, rel := range []string{"in/x", "out/x", "abs/tmp/x", "../x", "dir/../../x"} {
			fd, _, err := mkdirBeneath(rootFD, rel, 0o755, nil, withOpenat2)
			if err == nil {
				unix.Close(fd)
				t.Errorf("openat2=%v %q accepted", withOpenat2, rel)
			} else if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.EXDEV) {
				t.Errorf("openat2=%v %q: %v, want ELOOP or EXDEV", withOpenat2, rel, err)
			}
		}
		if _, err := os.Lstat(filepath.Join(filepath.Dir(root), "secret-dir", "x")); err == nil {
			t.Error("a directory was made outside the root")
		}
		stop := errors.New("stop")
		var asked []string
		_, _, err = mkdirBeneath(rootFD, "dir/c/d", 0o755, func(rel string) error { asked = append(asked, rel); return stop }, withOpenat2)
		if !errors.Is(err, stop) || strings.Join(asked, ",") != "dir/c" {
			t.Errorf("before: %v %q", err, asked)
		}
		if _, err := os.Lstat(filepath.Join(root, "dir/c")); err == nil {
			t.Error("before's refusal still created the directory")
		}
	}
}

func TestOpenMountPoint(t *testing.T) {
	for _, withOpenat2 := range []bool{true, false} {
		root, _ := tree(t)
		m, err := openMountPoint(root, "new/mp", false, withOpenat2)
		if err != nil {
			t.Fatal(err)
		}
		if m.Path != filepath.Join(root, "new/mp") || fdPath(t, m.Fd()) != m.Path || m.ProcPath() != "/proc/self/fd/"+strconv.Itoa(m.Fd()) {
			t.Errorf("mount point %s, fd names %s", m.Path, fdPath(t, m.Fd()))
		}
		if strings.Join(m.Created, ",") != root+"/new,"+root+"/new/mp" {
			t.Errorf("created %q", m.Created)
		}
		m.Close()
		f, err := openMountPoint(root, "new/f", true, withOpenat2)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := os.Lstat(f.Path); err != nil || !st.Mode().IsRegular() || f.Created[len(f.Created)-1] != f.Path {
			t.Errorf("file mount point %v %v %q", st, err, f.Created)
		}
		f.Close()
		if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			rel  string
			file bool
			want error
		}{
			{"in/mp", false, unix.ELOOP},
			{"in", false, unix.ELOOP},
			{"in", true, unix.ELOOP},
			{"out/mp", true, unix.ELOOP},
			{"file/mp", false, unix.ENOTDIR},
			{"dir", true, unix.EEXIST},  // a directory where a file is wanted
			{"fifo", true, unix.EEXIST}, // never opened: it would block
			{"../x", false, unix.EXDEV},
		} {
			m, err := openMountPoint(root, c.rel, c.file, withOpenat2)
			if !errors.Is(err, c.want) {
				t.Errorf("openat2=%v %q file=%v: %v, want %v", withOpenat2, c.rel, c.file, err, c.want)
			}
			m.Close()
		}
	}
}

func FuzzOpenBeneath(f *testing.F) {
	root, rootFD := tree(f)
	for _, s := range []string{"dir/file", "in/file", "out/f", "../root", "abs/etc", "", "/", "dir/./file"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		fd, err := OpenBeneath(rootFD, rel, unix.O_PATH)
		if err != nil {
			return
		}
		defer unix.Close(fd)
		if p := fdPath(t, fd); !inside(p, root) {
			t.Fatalf("OpenBeneath(%q) opened %s, outside %s", rel, p, root)
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			t.Fatalf("OpenBeneath(%q) opened a symlink", rel)
		}
	})
}

func FuzzMkdirBeneath(f *testing.F) {
	root, rootFD := tree(f)
	for _, s := range []string{"a/b", "in/x", "out/x", "../x", "abs/tmp/x", "dir//c", "./d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		fd, created, err := MkdirBeneath(rootFD, rel, 0o755, nil)
		if err != nil {
			return
		}
		defer unix.Close(fd)
		if p := fdPath(t, fd); !inside(p, root) {
			t.Fatalf("MkdirBeneath(%q) opened %s, outside %s", rel, p, root)
		}
		for _, c := range created {
			if p := filepath.Join(root, c); !inside(p, root) {
				t.Fatalf("MkdirBeneath(%q) created %s", rel, p)
			}
		}
		if _, err := os.Lstat(filepath.Join(filepath.Dir(root), "secret-dir", "x")); err == nil {
			t.Fatalf("MkdirBeneath(%q) made a directory outside the root", rel)
		}
	})
}

func FuzzOpenMountPoint(f *testing.F) {
	root, _ := tree(f)
	for _, s := range []string{"a/mp", "in/mp", "out/mp", "../x", "file", "dir/file"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, rel string, file bool) {
		m, err := OpenMountPoint(root, rel, file)
		if err != nil {
			return
		}
		defer m.Close()
		if p := fdPath(t, m.Fd()); p != m.Path || !inside(p, root) {
			t.Fatalf("OpenMountPoint(%q) holds %s for %s, root %s", rel, p, m.Path, root)
		}
	})
}
