package erofs

import (
	"strconv"
	"strings"
)

// X-kata.mkdir.path directives. containerd's EROFS snapshotter asks, for a
// container with a writable layer disk, that the overlay's upper and work
// directories exist in that disk's file system before the overlay is
// mounted: "X-containerd.mkdir.path={{ mount 0 }}/upper:0755" and
// ".../work:0755" on its overlay mount (containerd v2.3.0
// plugins/snapshots/erofs/erofs.go:408-411), in the syntax
// path[:mode[:uid:gid]] with an octal mode and decimal ids
// (core/mount/manager/mkdir.go:44-82). Kata 4.1's runtime-rs copies them
// onto the first EROFS layer's storage as X-kata.mkdir.path=<same value>
// (runtime-rs crates/resource/src/rootfs/erofs_rootfs.rs:557-569,
// 975-984), and Kata's agent keeps only the path, replaces "{{ mount 0 }}"
// by the upper mount <run dir>/<id>/multi-layer/upper and "{{ mount 1 }}"
// by the first lower layer's mount, and creates the directory
// (src/agent/src/storage/multi_layer_erofs.rs:164-168, 263-281, 399-419,
// 713-780).
const (
	OptMkdirPath = "X-kata.mkdir.path="
	optMkdir     = "X-kata.mkdir."
	// MountUpper is the template of the upper mount, the only place a
	// directive may create directories in (the lower layers are read-only
	// EROFS).
	MountUpper = "{{ mount 0 }}"
	mountLower = "{{ mount 1 }}"
)

// Bounds on what a host can make the guest create: containerd asks for
// two directories, each a short path.
const (
	MaxMkdirs   = 16   // directives in one layer group
	maxMkdirLen = 1024 // bytes of one directive's value
	maxNameLen  = 255  // bytes of one path component (NAME_MAX)
)

// MkdirDirective is one X-kata.mkdir.path, parsed.
type MkdirDirective struct {
	// Path is the directory relative to the upper mount, clean: no empty,
	// "." or ".." component, no leading or trailing slash; "" is the upper
	// mount itself.
	Path string
	// Mode, UID and GID are the ones the host asked for; -1 when absent.
	// The driver checks them and creates directories 0755 and owned by
	// root whatever they say, as Kata's agent does (it ignores them).
	Mode, UID, GID int64
}

// ParseMkdir parses the value of one X-kata.mkdir.path option:
// "{{ mount 0 }}[/<path>][:<octal mode>[:<uid>:<gid>]]". Anything else —
// another template, an absolute or relative path, "..", ".", an empty
// component, a bad mode or id, an over-long value — is INVALID_ARGUMENT
// naming the directive.
func ParseMkdir(value string) (MkdirDirective, error) {
	opt := OptMkdirPath + value
	if len(value) > maxMkdirLen {
		return MkdirDirective{}, invalid("option %.64q...: %d bytes, at most %d", opt, len(value), maxMkdirLen)
	}
	d := MkdirDirective{Mode: -1, UID: -1, GID: -1}
	parts := strings.Split(value, ":")
	switch len(parts) {
	case 1, 2, 4:
	default:
		return MkdirDirective{}, invalid("option %q: want path[:mode[:uid:gid]]", opt)
	}
	var err error
	if len(parts) >= 2 {
		if d.Mode, err = parseDigits(parts[1], 8); err != nil || d.Mode > 0o777 {
			return MkdirDirective{}, invalid("option %q: mode %q is not octal permission bits (0 to 0777)", opt, parts[1])
		}
	}
	if len(parts) == 4 {
		d.UID, err = parseDigits(parts[2], 10)
		if err == nil {
			d.GID, err = parseDigits(parts[3], 10)
		}
		if err != nil || d.UID >= 1<<32-1 || d.GID >= 1<<32-1 {
			return MkdirDirective{}, invalid("option %q: uid and gid must be decimal ids", opt)
		}
	}
	p := parts[0]
	if strings.HasPrefix(p, mountLower) {
		return MkdirDirective{}, invalid("option %q: %s is a read-only EROFS layer; directories can only be made in the upper (%s)",
			opt, mountLower, MountUpper)
	}
	rest, ok := strings.CutPrefix(p, MountUpper)
	if !ok {
		return MkdirDirective{}, invalid("option %q: the path must start with %s (the upper mount)", opt, MountUpper)
	}
	if rest == "" {
		return d, nil
	}
	rest, ok = strings.CutPrefix(rest, "/")
	if !ok {
		return MkdirDirective{}, invalid("option %q: want %s/<path>", opt, MountUpper)
	}
	for _, c := range strings.Split(rest, "/") {
		switch {
		case c == "" || c == "." || c == "..":
			return MkdirDirective{}, invalid("option %q: path component %q (empty, \".\" and \"..\" are refused)", opt, c)
		case len(c) > maxNameLen:
			return MkdirDirective{}, invalid("option %.64q...: a path component over %d bytes", opt, maxNameLen)
		case strings.ContainsAny(c, "\x00{}"):
			return MkdirDirective{}, invalid("option %q: path component %q has a NUL or a template brace", opt, c)
		}
	}
	d.Path = rest
	return d, nil
}

// parseDigits parses a non-negative number of at most 10 digits, nothing
// else: strconv alone would take a sign too.
func parseDigits(s string, base int) (int64, error) {
	if s == "" || len(s) > 10 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, base, 64)
}
