package erofs

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// containerdMkdirs are the directives containerd v2.3.0's EROFS snapshotter
// puts on the overlay of a container with a writable layer disk
// (plugins/snapshots/erofs/erofs.go:408-411), as runtime-rs forwards them
// (erofs_rootfs.rs:975-984).
var containerdMkdirs = []string{
	"X-kata.mkdir.path={{ mount 0 }}/upper:0755",
	"X-kata.mkdir.path={{ mount 0 }}/work:0755",
}

func TestParseMkdir(t *testing.T) {
	for in, want := range map[string]MkdirDirective{
		"{{ mount 0 }}/upper:0755":         {Path: "upper", Mode: 0o755, UID: -1, GID: -1},
		"{{ mount 0 }}/work":               {Path: "work", Mode: -1, UID: -1, GID: -1},
		"{{ mount 0 }}":                    {Path: "", Mode: -1, UID: -1, GID: -1},
		"{{ mount 0 }}/a/b c/d:700:0:1000": {Path: "a/b c/d", Mode: 0o700, UID: 0, GID: 1000},
	} {
		got, err := ParseMkdir(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
}

func TestParseMkdirRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":              "",
		"absolute":           "/run/x",
		"relative":           "upper",
		"lower layer":        "{{ mount 1 }}/data",
		"other mount":        "{{ mount 2 }}/x",
		"no slash":           "{{ mount 0 }}upper",
		"dot dot":            "{{ mount 0 }}/../../etc",
		"inner dot dot":      "{{ mount 0 }}/upper/../x",
		"dot":                "{{ mount 0 }}/./upper",
		"double slash":       "{{ mount 0 }}//upper",
		"trailing slash":     "{{ mount 0 }}/upper/",
		"nul":                "{{ mount 0 }}/up\x00per",
		"template twice":     "{{ mount 0 }}/{{ mount 0 }}",
		"mode not octal":     "{{ mount 0 }}/upper:0999",
		"mode with type":     "{{ mount 0 }}/upper:40755",
		"empty mode":         "{{ mount 0 }}/upper:",
		"signed mode":        "{{ mount 0 }}/upper:+755",
		"signed uid":         "{{ mount 0 }}/upper:0755:+0:0",
		"three parts":        "{{ mount 0 }}/upper:0755:0",
		"five parts":         "{{ mount 0 }}/upper:0755:0:0:0",
		"negative uid":       "{{ mount 0 }}/upper:0755:-1:0",
		"bad gid":            "{{ mount 0 }}/upper:0755:0:root",
		"uid -1 as unsigned": "{{ mount 0 }}/upper:0755:4294967295:0",
		"long component":     "{{ mount 0 }}/" + strings.Repeat("a", 256),
		"long value":         "{{ mount 0 }}" + strings.Repeat("/a", 600),
	} {
		t.Run(name, func(t *testing.T) {
			if d, err := ParseMkdir(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("%+v, %v; want INVALID_ARGUMENT", d, err)
			}
		})
	}
}

func TestParseOptionsMkdirs(t *testing.T) {
	lo, err := ParseOptions(kataLower(containerdMkdirs...))
	if err != nil {
		t.Fatal(err)
	}
	if len(lo.Mkdirs) != 2 || lo.Mkdirs[0].Path != "upper" || lo.Mkdirs[1].Path != "work" {
		t.Fatalf("mkdirs %+v", lo.Mkdirs)
	}
	if len(lo.MountOptions) != 0 {
		t.Fatalf("a directive became a mount option: %q", lo.MountOptions)
	}
	many := kataLower()
	for range MaxMkdirs + 1 {
		many = append(many, containerdMkdirs[0])
	}
	for name, opts := range map[string][]string{
		"malformed":      kataLower("X-kata.mkdir.path=/etc"),
		"unknown mkdir":  kataLower("X-kata.mkdir.mode=0755"),
		"too many":       many,
		"lower template": kataLower("X-kata.mkdir.path={{ mount 1 }}/x"),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseOptions(opts); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "mkdir") {
				t.Fatalf("err = %v, want INVALID_ARGUMENT naming the directive", err)
			}
		})
	}
}

func FuzzParseMkdir(f *testing.F) {
	for _, o := range containerdMkdirs {
		f.Add(strings.TrimPrefix(o, OptMkdirPath))
	}
	f.Add("{{ mount 0 }}/a/../b:0777:0:0")
	f.Add("{{ mount 1 }}/x")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseMkdir(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error not INVALID_ARGUMENT: %v", err)
			}
			return
		}
		// What is accepted stays below the upper mount: relative, clean,
		// no component that climbs or is empty, bounded.
		if strings.HasPrefix(d.Path, "/") || strings.HasSuffix(d.Path, "/") || len(d.Path) > maxMkdirLen {
			t.Fatalf("accepted path %q", d.Path)
		}
		if d.Path != "" {
			for _, c := range strings.Split(d.Path, "/") {
				if c == "" || c == "." || c == ".." || len(c) > maxNameLen || strings.ContainsRune(c, 0) {
					t.Fatalf("accepted component %q in %q", c, d.Path)
				}
			}
		}
		if d.Mode > 0o777 || d.Mode < -1 || (d.UID < 0) != (d.GID < 0) {
			t.Fatalf("accepted %+v", d)
		}
	})
}
