package generate

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/types"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

// topLayerImage pushes an image whose top layer holds /etc/passwd and
// /etc/group, first in the layer, followed by a large file, over a large
// base layer; both large files are random, so compression does not shrink
// them. It returns a registries.conf reaching it through a counting proxy
// and the image's reference there.
func topLayerImage(t testing.TB) (*testregistry.Proxy, string, string) {
	t.Helper()
	reg := testregistry.Start(t)
	dir := t.TempDir()
	random := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return string(b)
	}
	base := testregistry.Build(t, filepath.Join(dir, "base"), []string{"/bin/sh"},
		func(t testing.TB, rootfs string) { testenv.BusyboxRootfs(t, rootfs) },
		testregistry.Files(map[string]string{"/usr/lib/base.bin": random(8 << 20)}))
	// The tar lists /etc before /var: the scan is settled 2 MiB before the
	// layer ends.
	top := testregistry.Extend(t, base, filepath.Join(dir, "top"), testregistry.Files(map[string]string{
		"/etc/passwd": webPasswd, "/etc/group": webGroup, "/var/lib/app/data.bin": random(2 << 20),
	}))
	reg.Push(t, top, "top:v1", nil)
	px := testregistry.NewProxy(t, reg)
	conf := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", px.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	return px, conf, px.Addr + "/top:v1"
}

// TestFetchBudgetTopLayer: for an image whose users are in its top layer,
// reading them costs at most 10 % of the image's compressed size, counted
// by the registry's side (what it sent, not what the scan read).
func TestFetchBudgetTopLayer(t *testing.T) {
	px, conf, ref := topLayerImage(t)
	// containers/image's docker source still offers partial reads in the
	// shape rangesOf expects; without them every layer is one stream.
	dref, err := docker.ParseReference("//" + ref)
	if err != nil {
		t.Fatal(err)
	}
	src, err := dref.NewImageSource(context.Background(), &types.SystemContext{SystemRegistriesConfPath: conf})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if rangesOf(src) == nil {
		t.Fatal("the docker image source has no GetBlobAt of the expected shape")
	}
	ims, err := NewImages(ImageOptions{RegistriesConf: conf})
	if err != nil {
		t.Fatal(err)
	}
	before := px.Bytes()
	info, err := ims.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	sent := px.Bytes() - before
	if info.Passwd != webPasswd || info.Group != webGroup {
		t.Fatalf("passwd %q group %q", info.Passwd, info.Group)
	}
	pct := 100 * float64(sent) / float64(info.Compressed)
	t.Logf("registry sent %d blob bytes of %d compressed (%.1f %%); the scan read %d", sent, info.Compressed, pct, info.Fetched)
	if pct > 10 {
		t.Errorf("registry sent %d of %d compressed bytes (%.1f %%), want at most 10 %%", sent, info.Compressed, pct)
	}
	// Bounded, not just small on a good day: what the scan read, plus at
	// most one range it did not need, plus the config.
	if limit := info.Fetched + firstRange + 16<<10; sent > limit {
		t.Errorf("registry sent %d bytes for a scan that read %d, want at most %d", sent, info.Fetched, limit)
	}
}

// BenchmarkFetchTopLayer reports the share of an image's compressed bytes
// the registry sends to read users from its top layer.
func BenchmarkFetchTopLayer(b *testing.B) {
	px, conf, ref := topLayerImage(b)
	var sent, total int64
	for i := 0; i < b.N; i++ {
		ims, err := NewImages(ImageOptions{RegistriesConf: conf})
		if err != nil {
			b.Fatal(err)
		}
		before := px.Bytes()
		info, err := ims.Resolve(context.Background(), ref)
		if err != nil {
			b.Fatal(err)
		}
		sent += px.Bytes() - before
		total = info.Compressed
	}
	b.ReportMetric(float64(sent)/float64(b.N), "bytes-sent/op")
	b.ReportMetric(float64(total), "bytes-compressed")
	b.ReportMetric(100*float64(sent)/float64(b.N)/float64(total), "%sent")
}
