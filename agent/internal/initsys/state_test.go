package initsys

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The agent's state (decision log, measurement log) gets a tmpfs of its
// own, bounded, and the image store another: filling /run, or the image
// store, leaves the state's space untouched.
func TestStateMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to mount")
	}
	root := t.TempDir()
	run := filepath.Join(root, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	// Stand-in for the guest's /run: small enough to fill in a test.
	if err := unix.Mount("tmpfs", run, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(run, unix.MNT_DETACH) })
	if err := mountState(root); err != nil {
		t.Fatal(err)
	}
	state, images := filepath.Join(root, StateDir), filepath.Join(root, StateImageDir)
	t.Cleanup(func() {
		unix.Unmount(images, unix.MNT_DETACH)
		unix.Unmount(state, unix.MNT_DETACH)
	})
	var st unix.Statfs_t
	if err := unix.Statfs(state, &st); err != nil {
		t.Fatal(err)
	}
	if size := int64(st.Blocks) * st.Bsize; size != StateSize {
		t.Fatalf("state tmpfs is %d bytes, want %d", size, StateSize)
	}
	// Idempotent: a second call (the agent restarted) mounts nothing more.
	if err := mountState(root); err != nil {
		t.Fatal(err)
	}
	free := func() uint64 {
		var s unix.Statfs_t
		unix.Statfs(state, &s)
		return s.Bfree
	}
	before := free()
	for _, dir := range []string{run, images} {
		f, err := os.Create(filepath.Join(dir, "filler"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1024; i++ {
			if _, err := f.Write(make([]byte, 4096)); err != nil {
				if !errors.Is(err, unix.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
		f.Close()
	}
	if after := free(); after != before {
		t.Fatalf("state free blocks %d -> %d after filling /run and the image store", before, after)
	}
	if err := os.WriteFile(filepath.Join(state, "decisions.log"), []byte("entry\n"), 0o600); err != nil {
		t.Fatalf("state not writable with /run full: %v", err)
	}
}
