package storage

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// testGID is the fs_group the tests hand volumes to; no file starts with it.
const testGID = 4242

var always = &FSGroup{GroupID: testGID}

func write(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// unchanged fails the test if p's owner or mode differ from before.
func unchanged(t *testing.T, p string, before unix.Stat_t) {
	t.Helper()
	if st := lstat(t, p); st.Gid != before.Gid || st.Mode != before.Mode {
		t.Errorf("%s changed: gid %d→%d mode %o→%o", p, before.Gid, st.Gid, before.Mode, st.Mode)
	}
}

// outsideTree is a directory the volume must never reach: a file and a
// directory holding a file.
func outsideTree(t *testing.T) (dir, file, subFile string) {
	dir = t.TempDir()
	file = filepath.Join(dir, "secret")
	write(t, file, 0o600)
	mkdir(t, filepath.Join(dir, "sub"))
	subFile = filepath.Join(dir, "sub", "f")
	write(t, subFile, 0o600)
	return dir, file, subFile
}

// A container sharing the volume plants symlinks to files and directories
// outside it; the walk changes the links at most, never what they point to,
// and does not descend through a linked directory.
func TestFSGroupLeavesSymlinkTargetsAlone(t *testing.T) {
	outDir, outFile, outSub := outsideTree(t)
	before := map[string]unix.Stat_t{}
	for _, p := range []string{outDir, outFile, filepath.Join(outDir, "sub"), outSub} {
		before[p] = lstat(t, p)
	}

	vol := t.TempDir()
	write(t, filepath.Join(vol, "own"), 0o600)
	mkdir(t, filepath.Join(vol, "d"))
	write(t, filepath.Join(vol, "d", "own"), 0o600)
	for link, target := range map[string]string{
		"tofile": outFile, "todir": outDir, "d/tosub": filepath.Join(outDir, "sub"),
	} {
		if err := os.Symlink(target, filepath.Join(vol, link)); err != nil {
			t.Fatal(err)
		}
	}

	if err := applyFSGroup(vol, always, false); err != nil {
		t.Fatal(err)
	}
	for p, st := range before {
		unchanged(t, p, st)
	}
	// The volume's own entries are handed over.
	for _, p := range []string{vol, filepath.Join(vol, "d")} {
		if st := lstat(t, p); st.Gid != testGID || st.Mode&0o2770 != 0o2770 {
			t.Errorf("dir %s: gid %d mode %o", p, st.Gid, st.Mode)
		}
	}
	for _, p := range []string{filepath.Join(vol, "own"), filepath.Join(vol, "d", "own")} {
		if st := lstat(t, p); st.Gid != testGID || st.Mode&0o7777 != 0o660 {
			t.Errorf("file %s: gid %d mode %o", p, st.Gid, st.Mode)
		}
	}
	// The links themselves join the group, as Kubernetes does; that touches
	// only the link.
	for _, p := range []string{"tofile", "todir", "d/tosub"} {
		if st := lstat(t, filepath.Join(vol, p)); st.Gid != testGID {
			t.Errorf("link %s: gid %d", p, st.Gid)
		}
	}
}

// A volume whose root is a symlink is refused: the walk would start outside.
func TestFSGroupRefusesSymlinkRoot(t *testing.T) {
	outDir, outFile, _ := outsideTree(t)
	before := lstat(t, outFile)
	link := filepath.Join(t.TempDir(), "vol")
	if err := os.Symlink(outDir, link); err != nil {
		t.Fatal(err)
	}
	if err := applyFSGroup(link, always, false); err == nil {
		t.Error("symlinked volume root accepted")
	}
	unchanged(t, outFile, before)
}

// A mount inside the volume belongs to another file system (or another part
// of this one): the walk stops at it.
func TestFSGroupDoesNotCrossMounts(t *testing.T) {
	outDir, outFile, outSub := outsideTree(t)
	before := map[string]unix.Stat_t{outDir: lstat(t, outDir), outFile: lstat(t, outFile), outSub: lstat(t, outSub)}
	vol := t.TempDir()
	mp := filepath.Join(vol, "m")
	mkdir(t, mp)
	if err := unix.Mount(outDir, mp, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })

	if err := applyFSGroup(vol, always, false); err != nil {
		t.Fatal(err)
	}
	for p, st := range before {
		unchanged(t, p, st)
	}
	if st := lstat(t, vol); st.Gid != testGID {
		t.Errorf("volume root not handed over: gid %d", st.Gid)
	}
}

// A file volume (watchable-bind of one file) is handed over too.
func TestFSGroupSingleFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "token")
	write(t, f, 0o600)
	if err := applyFSGroup(f, always, true); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, f); st.Gid != testGID || st.Mode&0o7777 != 0o640 {
		t.Errorf("gid %d mode %o", st.Gid, st.Mode)
	}
}

// A container swaps a directory of the volume for a symlink to the outside
// and back, as fast as it can, while fs_group walks the volume. Whatever
// the interleaving, nothing outside may change. Descending by path loses
// this race within a few walks; descending by file descriptor cannot.
func TestFSGroupSwapRace(t *testing.T) {
	outDir, outFile, outSub := outsideTree(t)
	// The outside directory mirrors the inside one, so that a walk that
	// strays finds the same names there.
	write(t, filepath.Join(outDir, "f"), 0o600)
	watch := []string{outDir, outFile, outSub, filepath.Join(outDir, "f"), filepath.Join(outDir, "sub")}
	before := map[string]unix.Stat_t{}
	for _, p := range watch {
		before[p] = lstat(t, p)
	}

	vol := t.TempDir()
	mkdir(t, filepath.Join(vol, "d"))
	write(t, filepath.Join(vol, "d", "f"), 0o600)
	mkdir(t, filepath.Join(vol, "d", "sub"))
	if err := os.Symlink(outDir, filepath.Join(vol, "swap")); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	swapped := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				swapped <- nil
				return
			default:
			}
			// Atomically exchange the directory "d" and the symlink "swap".
			if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(vol, "d"), unix.AT_FDCWD, filepath.Join(vol, "swap"), unix.RENAME_EXCHANGE); err != nil {
				swapped <- err
				return
			}
		}
	}()
	const walks = 300
	for i := 0; i < walks; i++ {
		// Errors are expected (an entry vanishes mid-walk); straying is not.
		_ = applyFSGroup(vol, always, false)
	}
	close(stop)
	if err := <-swapped; err != nil {
		t.Fatal(err)
	}
	for p, st := range before {
		unchanged(t, p, st)
	}
}

// Kernels before fchmodat2 (6.6) chmod an O_PATH descriptor through
// /proc/self/fd; that reaches the opened file even after its name is taken
// by a symlink to the outside.
func TestChmodProcFDStaysOnTheOpenedFile(t *testing.T) {
	_, outFile, _ := outsideTree(t)
	before := lstat(t, outFile)
	vol := t.TempDir()
	f := filepath.Join(vol, "f")
	write(t, f, 0o600)
	fd, isDir, err := openNoFollow(unix.AT_FDCWD, f)
	if err != nil || isDir {
		t.Fatalf("open: %v (dir %v)", err, isDir)
	}
	defer unix.Close(fd)
	if err := os.Rename(f, filepath.Join(vol, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outFile, f); err != nil {
		t.Fatal(err)
	}
	if err := chmodProcFD(fd, 0o640); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(vol, "moved")); st.Mode&0o7777 != 0o640 {
		t.Errorf("opened file mode %o", st.Mode&0o7777)
	}
	unchanged(t, outFile, before)
}
