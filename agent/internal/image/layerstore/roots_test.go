package layerstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func writeFill(name string) Fill {
	return func(_ context.Context, dir string) error {
		return os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644)
	}
}

// An added root (the pod's trusted_store) takes new layers; layers already
// stored stay where they are and are still found; the root can only go
// once nothing in it is held, and new layers then go back to the base.
func TestAddRootTakesNewLayersWithoutHidingOld(t *testing.T) {
	base, extra := t.TempDir(), t.TempDir()
	s, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old, fresh := testKey("old"), testKey("fresh")
	pOld, _, err := s.Acquire(ctx, old, writeFill("old"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddRoot(extra); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRoot(extra); !errdefs.IsAlreadyExists(err) {
		t.Errorf("adding the same root twice: %v, want ALREADY_EXISTS", err)
	}

	again, filled, err := s.Acquire(ctx, old, func(context.Context, string) error {
		t.Error("a stored layer was unpacked again after a root was added")
		return nil
	})
	if err != nil || filled || again != pOld {
		t.Fatalf("old layer after AddRoot: %q filled=%v err=%v, want %q", again, filled, err, pOld)
	}
	pFresh, filled, err := s.Acquire(ctx, fresh, writeFill("fresh"))
	if err != nil || !filled {
		t.Fatalf("fresh layer: filled=%v err=%v", filled, err)
	}
	if !strings.HasPrefix(pFresh, extra+"/") || s.Path(fresh) != pFresh {
		t.Errorf("fresh layer at %q (Path %q), want it under the added root %s", pFresh, s.Path(fresh), extra)
	}
	if _, err := os.Stat(filepath.Join(pFresh, "fresh")); err != nil {
		t.Error(err)
	}

	if err := s.RemoveRoot(extra); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("removing a root that holds a used layer: %v, want FAILED_PRECONDITION", err)
	}
	if err := s.Release(fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pFresh); !os.IsNotExist(err) {
		t.Errorf("released layer left in the added root: %v", err)
	}
	if err := s.RemoveRoot(extra); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveRoot(extra); !errdefs.IsNotFound(err) {
		t.Errorf("removing a root twice: %v, want NOT_FOUND", err)
	}
	p, _, err := s.Acquire(ctx, fresh, writeFill("fresh"))
	if err != nil || !strings.HasPrefix(p, base+"/") {
		t.Errorf("after RemoveRoot the layer went to %q (%v), want the base root", p, err)
	}
	for _, id := range []Key{old, old, fresh} {
		if err := s.Release(id); err != nil {
			t.Error(err)
		}
	}
}

// A layer held from the added root is released there even after a newer
// root was added on top.
func TestReleaseUsesTheLayersOwnRoot(t *testing.T) {
	base, r1, r2 := t.TempDir(), t.TempDir(), t.TempDir()
	s, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddRoot(r1); err != nil {
		t.Fatal(err)
	}
	id := testKey("l")
	p, _, err := s.Acquire(context.Background(), id, writeFill("l"))
	if err != nil || !strings.HasPrefix(p, r1+"/") {
		t.Fatalf("layer at %q (%v), want under %s", p, err, r1)
	}
	if err := s.AddRoot(r2); err != nil {
		t.Fatal(err)
	}
	if got := s.Path(id); got != p {
		t.Errorf("Path = %q after a newer root, want %q", got, p)
	}
	if err := s.Release(id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("layer not collected from its own root: %v", err)
	}
}
