package layerstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

func TestAcquireFillsOnceAndShares(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := testKey("layer")
	var fills atomic.Int32
	release := make(chan struct{})
	fill := func(ctx context.Context, dir string) error {
		fills.Add(1)
		<-release
		return os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	}
	var wg sync.WaitGroup
	paths := make([]string, 8)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _, err := s.Acquire(context.Background(), id, fill)
			if err != nil {
				t.Error(err)
			}
			paths[i] = p
		}()
	}
	close(release)
	wg.Wait()
	if fills.Load() != 1 {
		t.Fatalf("%d fills for one layer", fills.Load())
	}
	for _, p := range paths {
		if p != s.Path(id) {
			t.Fatalf("path %q", p)
		}
	}
	if s.Refs(id) != 8 {
		t.Fatalf("refs %d", s.Refs(id))
	}
	for range 7 {
		if err := s.Release(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Path(id), "f")); err != nil {
		t.Fatal("layer collected while still referenced")
	}
	if err := s.Release(id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path(id)); !os.IsNotExist(err) {
		t.Fatal("unreferenced layer not collected")
	}
	if err := s.Release(id); err == nil {
		t.Fatal("release of an unheld layer succeeded")
	}
}

func TestFailedFillLeavesNothing(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	id := testKey("bad")
	boom := errors.New("digest mismatch")
	_, _, err = s.Acquire(context.Background(), id, func(ctx context.Context, dir string) error {
		_ = os.WriteFile(filepath.Join(dir, "half"), []byte("x"), 0o644)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	for _, d := range []string{"layers", "tmp"} {
		if ents, _ := os.ReadDir(filepath.Join(root, d)); len(ents) != 0 {
			t.Errorf("%s not empty after a failed fill", d)
		}
	}
	// A later attempt fills again.
	if _, filled, err := s.Acquire(context.Background(), id, func(ctx context.Context, dir string) error { return nil }); err != nil || !filled {
		t.Fatalf("retry: %v %v", filled, err)
	}
}

func TestOpenDropsInterruptedFillsKeepsLayers(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	id := testKey("kept")
	if _, _, err := s.Acquire(context.Background(), id, func(ctx context.Context, dir string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp", "crashed", "fs"), 0o755); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Error("interrupted fill survived Open")
	}
	if _, filled, err := s2.Acquire(context.Background(), id, func(ctx context.Context, dir string) error { return errors.New("must not refill") }); err != nil || filled {
		t.Fatalf("complete layer not reused: %v %v", filled, err)
	}
}

func TestAcquireRejectsBadDigest(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	good := digest.FromString("x")
	for _, id := range []Key{
		{},
		{Blob: "sha256:../../x", DiffID: good},
		{Blob: good, DiffID: "md5:abc"},
		{Blob: good, DiffID: good, KeyDigest: "sha256:zz"},
	} {
		if _, _, err := s.Acquire(context.Background(), id, nil); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%+v: %v", id, err)
		}
	}
}

// TestKeyPartsAreNotShared: layers that agree on the diff_id but not on the
// blob, or on the key that decrypted it, are different layers.
func TestKeyPartsAreNotShared(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := testKey("layer")
	otherBlob, withKey, otherKey := base, base, base
	otherBlob.Blob = digest.FromString("other blob")
	withKey.KeyDigest = digest.FromString("key 1")
	otherKey.KeyDigest = digest.FromString("key 2")
	keys := []Key{base, otherBlob, withKey, otherKey}
	paths := map[string]bool{}
	for _, k := range keys {
		p, filled, err := s.Acquire(context.Background(), k, func(ctx context.Context, dir string) error { return nil })
		if err != nil || !filled {
			t.Fatalf("%v: filled %v, %v (reused another key's layer)", k, filled, err)
		}
		paths[p] = true
		if strings.Contains(p, k.DiffID.Encoded()) || (k.KeyDigest != "" && strings.Contains(p, k.KeyDigest.Encoded())) {
			t.Errorf("path %s shows the key", p)
		}
	}
	if len(paths) != len(keys) {
		t.Errorf("%d directories for %d keys", len(paths), len(keys))
	}
	if !strings.Contains(withKey.String(), "encrypted") || strings.Contains(withKey.String(), withKey.KeyDigest.Encoded()) {
		t.Errorf("String() = %s", withKey)
	}
}

func testKey(s string) Key {
	return Key{Blob: digest.FromString("blob of " + s), DiffID: digest.FromString(s)}
}
