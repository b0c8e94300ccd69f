package layer

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestAppendVerityMatchesVeritysetup: for sizes around every tree-shape
// boundary (one block, one hash block, a second level, a partial last block),
// the file we write is byte-identical to `veritysetup format` on the same
// data, salt, UUID and offset, and `veritysetup verify` accepts our root hash.
func TestAppendVerityMatchesVeritysetup(t *testing.T) {
	requireTool(t, "veritysetup")
	u := uuid.MustParse("6f2c1d0e-8a44-4b7e-9c1a-0d5e3f2b7a91")
	for _, size := range []int{4096, 4097, 2 * 4096, 128 * 4096, 129 * 4096, 128*128*4096 + 4096} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			data := make([]byte, size)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			ours, theirs := filepath.Join(dir, "ours"), filepath.Join(dir, "theirs")
			for _, p := range []string{ours, theirs} {
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			v, err := AppendVerity(ours, DefaultSalt, u)
			if err != nil {
				t.Fatal(err)
			}
			if v.HashOffset%VerityBlockSize != 0 || v.HashOffset < uint64(size) {
				t.Fatalf("hash offset %d for %d bytes", v.HashOffset, size)
			}
			// veritysetup wants the data area whole: pad as AppendVerity does.
			if err := os.Truncate(theirs, int64(v.HashOffset)); err != nil {
				t.Fatal(err)
			}
			off := fmt.Sprint(v.HashOffset)
			out := run(t, "veritysetup", "format", "--hash-offset="+off,
				"--salt="+hex.EncodeToString(DefaultSalt), "--uuid="+u.String(),
				"--hash=sha256", "--format=1", "--data-block-size=4096", "--hash-block-size=4096",
				fmt.Sprintf("--data-blocks=%d", v.DataBlocks), theirs, theirs)
			if want := rootHashFromFormat(t, out); want != v.RootHashHex() {
				t.Fatalf("root hash %s, veritysetup %s", v.RootHashHex(), want)
			}
			a, _ := os.ReadFile(ours)
			b, _ := os.ReadFile(theirs)
			if !bytes.Equal(a, b) {
				t.Fatalf("files differ: ours %d bytes, veritysetup %d bytes", len(a), len(b))
			}
			run(t, "veritysetup", "verify", "--hash-offset="+off, ours, ours, v.RootHashHex())
		})
	}
}

// TestVerifyRejectsFlippedByte: veritysetup verify (userspace, no
// device-mapper) refuses our tree after one data byte or one hash-tree byte
// changes.
func TestVerifyRejectsFlippedByte(t *testing.T) {
	requireTool(t, "veritysetup")
	dir := t.TempDir()
	data := make([]byte, 300*4096)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	for name, at := range map[string]func(v *Verity) int64{
		"data": func(*Verity) int64 { return 123456 },
		"tree": func(v *Verity) int64 { return int64(v.HashOffset) + VerityBlockSize + 100 },
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			v, err := AppendVerity(p, DefaultSalt, [16]byte{1})
			if err != nil {
				t.Fatal(err)
			}
			off := "--hash-offset=" + fmt.Sprint(v.HashOffset)
			run(t, "veritysetup", "verify", off, p, p, v.RootHashHex())
			flipByte(t, p, at(v))
			out, err := exec.Command("veritysetup", "verify", off, p, p, v.RootHashHex()).CombinedOutput()
			if err == nil {
				t.Fatalf("verify accepted a flipped byte: %s", out)
			}
		})
	}
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func rootHashFromFormat(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Root hash" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no root hash in veritysetup output:\n%s", out)
	return ""
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is needed (ci/install-deps.sh installs it): %v", name, err)
	}
}
