package copyfile

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkCopy measures one whole-file CopyFile (a typical config map key)
// including the path walk, temp file and rename.
func BenchmarkCopy(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			f := newFixture(b)
			data := make([]byte, size)
			p := filepath.Join(f.root, "cid", "volumes", "cfg", "key")
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := f.c.Copy(context.Background(), &Request{Path: p, FileSize: int64(size), FileMode: 0o644, DirMode: 0o755, Data: data, UID: -1, GID: -1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
