package layer

import (
	"archive/tar"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// syntheticLayer writes an uncompressed layer tar of about size bytes:
// 1,000 directories of 64 KiB-to-1 MiB files of pseudo-random bytes (so
// nothing dedupes), and returns its path.
func syntheticLayer(b *testing.B, size int64) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "layer.tar")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	var written int64
	for i := 0; written < size; i++ {
		dir := fmt.Sprintf("data/d%03d", i%1000)
		if i < 1000 {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}); err != nil {
				b.Fatal(err)
			}
		}
		n := 64<<10 + rng.IntN(960<<10)
		for j := range buf[:n] {
			buf[j] = byte(rng.Uint32())
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%s/f%05d", dir, i), Mode: 0o644, Size: int64(n),
			ModTime: time.Unix(1700000000, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(buf[:n]); err != nil {
			b.Fatal(err)
		}
		written += int64(n)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkBuildLayer300MB: build time of a 300 MB layer (mkfs.erofs plus
// the Go hash tree), reported as seconds per GB of layer content.
func BenchmarkBuildLayer300MB(b *testing.B) {
	testenv.RequiresRoot(b)
	m := testMkfs(b)
	const size = 300 << 20
	tarPath := syntheticLayer(b, size)
	out := filepath.Join(b.TempDir(), "layer.erofs")
	b.SetBytes(size)
	b.ResetTimer()
	var verity time.Duration
	for i := 0; i < b.N; i++ {
		if _, err := Build(context.Background(), m, tarPath, out); err != nil {
			b.Fatal(err)
		}
		// Time the hash tree alone on the image just built.
		b.StopTimer()
		if err := os.Truncate(out, int64(size)); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if _, err := AppendVerity(out, DefaultSalt, [16]byte{}); err != nil {
			b.Fatal(err)
		}
		verity += time.Since(t0)
		b.StartTimer()
	}
	perGB := float64(1<<30) / float64(size)
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*perGB, "s/GB")
	b.ReportMetric(verity.Seconds()/float64(b.N)*perGB, "verity-s/GB")
}
