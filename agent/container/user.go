package container

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// maxAccountFile bounds how much of a container's /etc/passwd or /etc/group
// is read: the files come from the image, which the host may have chosen.
const maxAccountFile = 4 << 20

// User is a resolved identity.
type User struct {
	UID, GID       uint32
	AdditionalGids []uint32
}

// StringUser is a user given by name or number (CreateContainer's and
// ExecProcess's string_user): UID and GID as ResolveUser reads them, and
// further groups each a group name or number.
type StringUser struct {
	UID, GID       string
	AdditionalGids []string
}

// ApplyStringUser resolves su against rootfs and sets it as p's user. A nil
// su or one without a UID leaves p's user as it is.
func ApplyStringUser(p *specs.Process, su *StringUser, rootfs string) error {
	if su == nil || su.UID == "" {
		return nil
	}
	spec := su.UID
	if su.GID != "" {
		spec += ":" + su.GID
	}
	u, err := ResolveUser(rootfs, spec)
	if err != nil {
		return err
	}
	p.User.UID, p.User.GID = u.UID, u.GID
	p.User.AdditionalGids = u.AdditionalGids
	for _, g := range su.AdditionalGids {
		gid, err := ResolveGroup(rootfs, g)
		if err != nil {
			return err
		}
		p.User.AdditionalGids = append(p.User.AdditionalGids, gid)
	}
	return nil
}

type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// ResolveUser resolves an image-style user string — "name", "uid",
// "name:group", "uid:gid" (either side a name or a number) — against the
// account files of rootfs, opened so that symlinks cannot leave it. A name
// that does not exist is an error; a numeric uid need not exist. Without an
// explicit group the user's primary group applies (0 for an unknown uid);
// groups that list the user as a member become additional groups.
func ResolveUser(rootfs, spec string) (User, error) {
	if len(spec) > 512 || strings.ContainsRune(spec, 0) {
		return User{}, errs.Newf(errdefs.ErrInvalidArgument, "user %q is malformed", spec)
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	passwd := readAccounts(rootfs, "/etc/passwd", parsePasswd)
	groups := readAccounts(rootfs, "/etc/group", parseGroup)

	var u User
	var name string
	if id, ok := parseID(userPart); ok {
		u.UID = id
		for _, p := range passwd {
			if p.uid == id {
				name, u.GID = p.name, p.gid
				break
			}
		}
	} else {
		found := false
		for _, p := range passwd {
			if p.name == userPart {
				name, u.UID, u.GID, found = p.name, p.uid, p.gid, true
				break
			}
		}
		if !found {
			return User{}, errs.Newf(errdefs.ErrInvalidArgument, "user %q not found in the container's /etc/passwd", userPart)
		}
	}
	if hasGroup && groupPart != "" {
		g, err := resolveGroup(groups, groupPart)
		if err != nil {
			return User{}, err
		}
		u.GID = g
	}
	if name != "" && !hasGroup {
		for _, g := range groups {
			if g.gid == u.GID {
				continue
			}
			for _, m := range g.members {
				if m == name {
					u.AdditionalGids = append(u.AdditionalGids, g.gid)
					break
				}
			}
		}
	}
	return u, nil
}

// ResolveGroup resolves a group name or number against rootfs.
func ResolveGroup(rootfs, spec string) (uint32, error) {
	if id, ok := parseID(spec); ok {
		return id, nil
	}
	return resolveGroup(readAccounts(rootfs, "/etc/group", parseGroup), spec)
}

func resolveGroup(groups []groupEntry, spec string) (uint32, error) {
	if id, ok := parseID(spec); ok {
		return id, nil
	}
	for _, g := range groups {
		if g.name == spec {
			return g.gid, nil
		}
	}
	return 0, errs.Newf(errdefs.ErrInvalidArgument, "group %q not found in the container's /etc/group", spec)
}

func parseID(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil
}

// readAccounts reads an account file of the rootfs; a missing or unreadable
// file is an empty table, as in an image without one.
func readAccounts[T any](rootfs, name string, parse func([]byte) []T) []T {
	if rootfs == "" {
		return nil
	}
	p, err := safepath.Join(rootfs, name)
	if err != nil {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(&limitedReader{f: f, n: maxAccountFile}); err != nil {
		return nil
	}
	return parse(buf.Bytes())
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("account file larger than %d bytes", maxAccountFile)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// parsePasswd reads name:password:uid:gid:... lines, skipping malformed ones.
func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if ok1 && ok2 {
			out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid})
		}
	}
	return out
}

// parseGroup reads name:password:gid:member,member lines.
func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		gid, ok := parseID(f[2])
		if !ok {
			continue
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	}
	return out
}
