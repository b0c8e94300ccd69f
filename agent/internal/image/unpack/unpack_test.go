package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

type ent struct {
	name, link, body string
	typ              byte
	mode             int64
	uid              int
	xattrs           map[string]string
	major            int64
}

func mkTar(t testing.TB, ents []ent, endBlocks bool) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.uid, Devmajor: e.major, Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords[xattrPAXPrefix+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if !endBlocks {
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func unpackInto(t *testing.T, data []byte, o Options) (string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Unpack(context.Background(), bytes.NewReader(data), dir, o)
	return dir, err
}

func TestUnpackContents(t *testing.T) {
	testenv.RequiresRoot(t)
	data := mkTar(t, []ent{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/tool", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755, uid: 0, xattrs: map[string]string{"user.note": "kept"}},
		{name: "bin/alias", typ: tar.TypeLink, link: "bin/tool"},
		{name: "etc/owned", typ: tar.TypeReg, body: "x", uid: 1000},
		{name: "lib", typ: tar.TypeSymlink, link: "/usr/lib"},
		{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		{name: "etc/owned", typ: tar.TypeReg, body: "second wins", uid: 1000},
	}, false)
	dir, err := unpackInto(t, data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "bin/tool"))
	if err != nil || st.Mode()&os.ModeSetuid == 0 {
		t.Fatalf("setuid bit lost: %v %v", st.Mode(), err)
	}
	var a, b unix.Stat_t
	_ = unix.Stat(filepath.Join(dir, "bin/tool"), &a)
	_ = unix.Stat(filepath.Join(dir, "bin/alias"), &b)
	if a.Ino != b.Ino {
		t.Error("hard link not preserved")
	}
	v := make([]byte, 16)
	n, err := unix.Lgetxattr(filepath.Join(dir, "bin/tool"), "user.note", v)
	if err != nil || string(v[:n]) != "kept" {
		t.Errorf("xattr: %q %v", v[:n], err)
	}
	var o unix.Stat_t
	_ = unix.Stat(filepath.Join(dir, "etc/owned"), &o)
	if o.Uid != 1000 || o.Gid != 1000 {
		t.Errorf("owner %d:%d", o.Uid, o.Gid)
	}
	if body, _ := os.ReadFile(filepath.Join(dir, "etc/owned")); string(body) != "second wins" {
		t.Errorf("duplicate entry: %q", body)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "lib")); l != "/usr/lib" {
		t.Errorf("symlink target %q", l)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "run/fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v", err)
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	testenv.RequiresRoot(t)
	data := mkTar(t, []ent{
		{name: "gone/.wh..wh..opq", typ: tar.TypeReg},
		{name: "gone/new", typ: tar.TypeReg, body: "n"},
		{name: "etc/.wh.removed", typ: tar.TypeReg},
	}, true)
	dir, err := unpackInto(t, data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := make([]byte, 4)
	n, err := unix.Lgetxattr(filepath.Join(dir, "gone"), opaqueXattr, v)
	if err != nil || string(v[:n]) != "y" {
		t.Errorf("opaque xattr: %q %v", v[:n], err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "etc/removed"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout device: mode %o rdev %d err %v", st.Mode, st.Rdev, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc/.wh.removed")); !os.IsNotExist(err) {
		t.Error("whiteout marker stored literally")
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	testenv.RequiresRoot(t)
	cases := map[string][]ent{
		"dotdot":             {{name: "../escaped", typ: tar.TypeReg, body: "x"}},
		"inner dotdot":       {{name: "a/../../escaped", typ: tar.TypeReg, body: "x"}},
		"through abs link":   {{name: "evil", typ: tar.TypeSymlink, link: "/"}, {name: "evil/escaped", typ: tar.TypeReg, body: "x"}},
		"through rel link":   {{name: "evil", typ: tar.TypeSymlink, link: "../.."}, {name: "evil/escaped", typ: tar.TypeReg, body: "x"}},
		"dir through link":   {{name: "evil", typ: tar.TypeSymlink, link: ".."}, {name: "evil/d/", typ: tar.TypeDir, mode: 0o755}},
		"hardlink outside":   {{name: "h", typ: tar.TypeLink, link: "../outside/secret"}},
		"hardlink via link":  {{name: "evil", typ: tar.TypeSymlink, link: "../outside"}, {name: "h", typ: tar.TypeLink, link: "evil/secret"}},
		"whiteout via link":  {{name: "evil", typ: tar.TypeSymlink, link: "../outside"}, {name: "evil/.wh.secret", typ: tar.TypeReg}},
		"char device":        {{name: "mem", typ: tar.TypeChar, major: 1}},
		"block device":       {{name: "sda", typ: tar.TypeBlock, major: 8}},
		"overlay xattr":      {{name: "d/", typ: tar.TypeDir, mode: 0o755, xattrs: map[string]string{"trusted.overlay.redirect": "/x"}}},
		"whiteout of dotdot": {{name: "a/.wh...", typ: tar.TypeReg}},
	}
	for name, ents := range cases {
		t.Run(name, func(t *testing.T) {
			base, dir := trapTree(t)
			_, err := Unpack(context.Background(), bytes.NewReader(mkTar(t, ents, true)), dir, Options{})
			if err == nil {
				t.Fatal("unsafe layer accepted")
			}
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("error %v is not ErrUnsafe", err)
			}
			assertOnly(t, base, map[string]bool{"outside": true, "outside/secret": true, "layer": true})
		})
	}
}

// trapTree makes base/outside/secret, what an unsafe layer would reach,
// and the empty layer directory base/layer to unpack into.
func trapTree(t testing.TB) (base, layer string) {
	t.Helper()
	base = t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "outside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "outside", "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	layer = filepath.Join(base, "layer")
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	return base, layer
}

// assertOnly checks that, outside base/layer, only the listed entries exist
// and the secret is intact.
func assertOnly(t testing.TB, base string, allowed map[string]bool) {
	t.Helper()
	_ = filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(base, p)
		if rel == "." || rel == "layer" {
			return nil
		}
		if rel == "layer" || filepath.Dir(rel) == "layer" || len(rel) > 6 && rel[:6] == "layer/" {
			if fi != nil && fi.IsDir() {
				return nil
			}
			return nil
		}
		if !allowed[rel] {
			t.Errorf("written outside the layer: %s", rel)
		}
		return nil
	})
	if b, err := os.ReadFile(filepath.Join(base, "outside/secret")); err != nil || string(b) != "s" {
		t.Errorf("secret changed: %q %v", b, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(base, "outside/secret"), &st); err == nil && st.Nlink != 1 {
		t.Errorf("secret gained a hard link (nlink %d)", st.Nlink)
	}
}

func TestUnpackDevicesWhenAllowed(t *testing.T) {
	testenv.RequiresRoot(t)
	dir, err := unpackInto(t, mkTar(t, []ent{{name: "null", typ: tar.TypeChar, major: 1, mode: 0o666}}, true), Options{AllowDevices: true})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Fatalf("device: %v", err)
	}
}

func TestUnpackLimits(t *testing.T) {
	testenv.RequiresRoot(t)
	big := mkTar(t, []ent{{name: "big", typ: tar.TypeReg, body: string(make([]byte, 1<<20))}}, true)
	if _, err := unpackInto(t, big, Options{MaxBytes: 64 << 10}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("byte bound: %v", err)
	}
	many := make([]ent, 50)
	for i := range many {
		many[i] = ent{name: string(rune('a'+i%26)) + string(rune('a'+i/26)), typ: tar.TypeReg}
	}
	if _, err := unpackInto(t, mkTar(t, many, true), Options{MaxEntries: 10}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("entry bound: %v", err)
	}
}

func TestUnpackTruncatedMidEntry(t *testing.T) {
	testenv.RequiresRoot(t)
	data := mkTar(t, []ent{{name: "f", typ: tar.TypeReg, body: string(make([]byte, 4096))}}, true)
	if _, err := unpackInto(t, data[:1024], Options{}); err == nil {
		t.Fatal("truncated entry accepted")
	}
}

func FuzzUnpack(f *testing.F) {
	f.Add(mkTar(f, []ent{{name: "a/b", typ: tar.TypeReg, body: "x"}, {name: "l", typ: tar.TypeSymlink, link: "../.."}, {name: "l/x", typ: tar.TypeReg}}, true))
	f.Add(mkTar(f, []ent{{name: "h", typ: tar.TypeLink, link: "../outside/secret"}, {name: "d/.wh..wh..opq", typ: tar.TypeReg}}, false))
	f.Add(mkTar(f, []ent{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh.x", typ: tar.TypeReg}, {name: "d", typ: tar.TypeReg, body: "over"}}, true))
	f.Add(mkTar(f, []ent{{name: "/", typ: tar.TypeDir}, {name: "/l", typ: tar.TypeSymlink, link: "/"}, {name: "/h", typ: tar.TypeLink, link: "/../outside/secret"}, {name: "./l/x", typ: tar.TypeReg}}, true))
	f.Fuzz(func(t *testing.T, data []byte) {
		if os.Geteuid() != 0 {
			t.Fatal("needs root")
		}
		base, dir := trapTree(t)
		_, _ = Unpack(context.Background(), bytes.NewReader(data), dir, Options{MaxBytes: 1 << 20, MaxEntries: 1000})
		assertOnly(t, base, map[string]bool{"outside": true, "outside/secret": true})
	})
}

// A GNU sparse entry declares a size its stream does not carry: the holes
// are produced by the reader. The declared size counts against the bound,
// so a two-kilobyte layer cannot write gigabytes. archive/tar does not write
// sparse files, so the PAX 1.0 sparse entry is assembled by hand.
func TestSparseEntryBounded(t *testing.T) {
	const realSize = 64 << 20
	var layer bytes.Buffer
	pax := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", "big") + paxRecord("GNU.sparse.realsize", fmt.Sprint(realSize))
	layer.Write(ustarHeader("PaxHeaders/big", tar.TypeXHeader, len(pax)))
	layer.Write(blockPad([]byte(pax)))
	// The stored data is only the sparse map: one empty region at the end.
	layer.Write(ustarHeader("GNUSparseFile.0/big", tar.TypeReg, 512))
	layer.Write(blockPad([]byte(fmt.Sprintf("1\n%d\n0\n", realSize))))

	dir := t.TempDir()
	_, err := Unpack(context.Background(), bytes.NewReader(layer.Bytes()), dir, Options{MaxBytes: 1 << 20})
	if fi, serr := os.Stat(filepath.Join(dir, "big")); serr == nil && fi.Size() > 1<<20 {
		t.Fatalf("a %d-byte layer wrote a %d-byte file", layer.Len(), fi.Size())
	}
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("sparse %d-byte entry: %v, want ErrTooLarge", realSize, err)
	}
}

// ustarHeader is one ustar header block with the given name, type and size.
func ustarHeader(name string, typ byte, size int) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	copy(b[257:], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// paxRecord formats one "<len> key=value\n" record, len counting itself.
func paxRecord(k, v string) string {
	for n := len(k) + len(v) + 3; ; n++ {
		if r := fmt.Sprintf("%d %s=%s\n", n, k, v); len(r) == n {
			return r
		}
	}
}

func blockPad(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
