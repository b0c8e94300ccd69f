package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
)

// withMkdirs is a layer carrying X-kata.mkdir.path directives, where
// runtime-rs puts the overlay's mkdir hints: on the first EROFS layer's
// storage (erofs_rootfs.rs:975-984 at Kata 4.1.0).
func withMkdirs(s *Storage, paths ...string) *Storage {
	for _, p := range paths {
		s.Options = append(s.Options, erofs.OptMkdirPath+p)
	}
	return s
}

func TestCheckLayersMkdirs(t *testing.T) {
	const mp = "/run/kata-containers/c1/rootfs"
	// What containerd v2.3.0's EROFS snapshotter asks for
	// (plugins/snapshots/erofs/erofs.go:408-411).
	set, err := checkLayers("c1", []*Storage{withMkdirs(kataLayer(1, hashA, mp), "{{ mount 0 }}/upper:0755", "{{ mount 0 }}/work:0755"), kataLayer(2, hashB, mp)})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.mkdirs) != 2 || set.mkdirs[0].Path != "upper" || set.mkdirs[1].Path != "work" {
		t.Fatalf("mkdirs %+v", set.mkdirs)
	}
	// Kata reads directives on every member, the upper disk's too.
	upper := &Storage{Driver: "blk", Source: "03", Fstype: "ext4", MountPoint: mp,
		Options: []string{"rw", "X-kata.overlay-upper", "X-kata.multi-layer=true", erofs.OptMkdirPath + "{{ mount 0 }}/scratch"}}
	if set, err := checkLayers("c1", []*Storage{upper, kataLayer(1, hashA, mp)}); err != nil || len(set.mkdirs) != 1 {
		t.Fatalf("directive on the upper: %v %+v", err, set.mkdirs)
	}

	var many []string
	for range erofs.MaxMkdirs/2 + 1 {
		many = append(many, "{{ mount 0 }}/x")
	}
	plain := withMkdirs(kataLayer(1, hashA, "/run/kata-containers/sandbox/storage/x"), "{{ mount 0 }}/upper")
	plain.Options = slicesWithout(plain.Options, "X-kata.overlay-lower", "X-kata.multi-layer=true", "X-kata.gpt-partitioned=true", "X-kata.partition-number=1")
	for name, c := range map[string]struct {
		in   []*Storage
		want error
	}{
		"inside the upper dir":   {[]*Storage{withMkdirs(kataLayer(1, hashA, mp), "{{ mount 0 }}/upper/etc")}, errdefs.ErrPermissionDenied},
		"inside the work dir":    {[]*Storage{withMkdirs(kataLayer(1, hashA, mp), "{{ mount 0 }}/work/work")}, errdefs.ErrPermissionDenied},
		"too many in the group":  {[]*Storage{withMkdirs(kataLayer(1, hashA, mp), many...), withMkdirs(kataLayer(2, hashB, mp), many...)}, errdefs.ErrInvalidArgument},
		"plain verified storage": {[]*Storage{plain}, errdefs.ErrInvalidArgument},
		"malformed":              {[]*Storage{withMkdirs(kataLayer(1, hashA, mp), "{{ mount 0 }}/../etc")}, errdefs.ErrInvalidArgument},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := checkLayers("c1", c.in)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), "mkdir") {
				t.Fatalf("err = %v, want %v naming the directive", err, c.want)
			}
		})
	}
}

func slicesWithout(in []string, drop ...string) []string {
	var out []string
	for _, s := range in {
		keep := true
		for _, d := range drop {
			keep = keep && s != d
		}
		if keep {
			out = append(out, s)
		}
	}
	return out
}

// TestLayerGroupMakeDirs creates the directives' directories in a group's
// upper mount (here a directory, as the guest-memory upper is): 0755 and
// the agent's whatever mode the host asked for, and never through a
// symlink.
func TestLayerGroupMakeDirs(t *testing.T) {
	run := t.TempDir()
	rs, err := newRoots([]string{run})
	if err != nil {
		t.Fatal(err)
	}
	g := &layerGroup{b: &builtin{roots: rs}}
	upper := filepath.Join(run, "c1", "multi-layer", "upper")
	dirs := func(paths ...string) []erofs.MkdirDirective {
		var out []erofs.MkdirDirective
		for _, p := range paths {
			d, err := erofs.ParseMkdir(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		return out
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	if err := g.makeDirs(upper, dirs("{{ mount 0 }}/upper:0777", "{{ mount 0 }}/work:0700:1000:1000", "{{ mount 0 }}/a/b", "{{ mount 0 }}")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"upper", "work", "a", "a/b"} {
		st, err := os.Stat(filepath.Join(upper, p))
		if err != nil {
			t.Fatal(err)
		}
		if !st.IsDir() || st.Mode().Perm() != 0o755 || st.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
			t.Errorf("%s: %v owned by %d, want a 0755 directory of the agent's", p, st.Mode(), st.Sys().(*syscall.Stat_t).Uid)
		}
	}
	// Again: directories that exist are fine.
	if err := g.makeDirs(upper, dirs("{{ mount 0 }}/upper")); err != nil {
		t.Fatal(err)
	}

	// A symlink in the upper mount is not followed, not even to a place
	// below the root.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(upper, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(upper, "rel")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(upper, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"{{ mount 0 }}/link/x", "{{ mount 0 }}/link", "{{ mount 0 }}/rel/x", "{{ mount 0 }}/file/x", "{{ mount 0 }}/file"} {
		err := g.makeDirs(upper, dirs(p))
		if err == nil {
			t.Errorf("%s: created", p)
		}
		if !errdefs.IsPermissionDenied(err) && !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v, want PERMISSION_DENIED or INVALID_ARGUMENT", p, err)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("created outside the upper: %v", ents)
	}
	if _, err := os.Lstat(filepath.Join(upper, "a", "x")); !os.IsNotExist(err) {
		t.Fatalf("created through a relative symlink: %v", err)
	}
}
