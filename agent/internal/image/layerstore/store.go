// Package layerstore owns the on-disk store of unpacked image layers, shared
// by every container of the pod. A stored layer is named by everything that
// produced it (Key): the blob the manifest names, the diff_id it unpacked
// to and, for an encrypted layer, the key that decrypted it, so an image
// can only reuse a layer it could have produced itself. Layers are
// reference counted and removed when their last user releases them; a
// layer becomes visible only after it was unpacked in a temporary directory
// and verified, then renamed into place, so a crash or a failed pull never
// leaves a half-written layer behind. Concurrent requests for the same
// layer wait for one fill instead of downloading twice.
package layerstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Key names a stored layer by what produced it. A diff_id alone is not
// enough: the config that lists it is public, so any image could claim the
// diff_id of an encrypted layer and be handed its plaintext.
type Key struct {
	// Blob is the digest of the blob as the manifest names it (compressed,
	// and encrypted when the layer is).
	Blob digest.Digest
	// DiffID is the digest of the uncompressed tar the blob unpacks to.
	DiffID digest.Digest
	// KeyDigest, for an encrypted layer, is a digest of the secret cipher
	// options that decrypted Blob; empty for a plain layer. A puller can
	// only name it after its own key resolved and opened the layer key, so
	// a decrypted layer is never reused without that key.
	KeyDigest digest.Digest
}

// Validate refuses keys that are not well-formed digests.
func (k Key) Validate() error {
	for _, d := range []struct {
		what string
		d    digest.Digest
	}{{"blob digest", k.Blob}, {"diff_id", k.DiffID}} {
		if err := d.d.Validate(); err != nil {
			return errs.Newf(errdefs.ErrInvalidArgument, "layer %s %q: %v", d.what, d.d, err)
		}
	}
	if k.KeyDigest != "" {
		if err := k.KeyDigest.Validate(); err != nil {
			return errs.Newf(errdefs.ErrInvalidArgument, "layer key digest: %v", err)
		}
	}
	return nil
}

// String names the layer for errors and logs (never the key digest).
func (k Key) String() string {
	if k.KeyDigest != "" {
		return fmt.Sprintf("%s (diff_id %s, encrypted)", k.Blob, k.DiffID)
	}
	return fmt.Sprintf("%s (diff_id %s)", k.Blob, k.DiffID)
}

// name is the layer's directory name: one fixed-length hash of the whole
// key, which keeps overlay option strings short and never shows the key
// digest. Digests contain no NUL, so the encoding is unambiguous.
func (k Key) name() string {
	h := sha256.Sum256([]byte("cocoon layer v1\x00" + k.Blob.String() + "\x00" + k.DiffID.String() + "\x00" + k.KeyDigest.String()))
	return hex.EncodeToString(h[:])
}

// Fill writes a layer into dir (an empty directory) and returns nil only
// when the content is verified.
type Fill func(ctx context.Context, dir string) error

// Store is the layer store rooted at one directory, and at the roots
// added later (AddRoot), each laid out the same:
//
//	<root>/layers/<hash of Key>  complete layers
//	<root>/tmp/                  fills in progress (wiped at start)
type Store struct {
	root string

	mu sync.Mutex
	// added are the roots AddRoot gave, newest last; new layers go to
	// the newest root of all.
	added   []string
	refs    map[Key]int
	at      map[Key]string // the root of each referenced layer
	pending map[Key]*fill
}

type fill struct {
	done chan struct{}
	err  error
	root string
}

// Open creates (or adopts) a store at root. Leftovers of interrupted fills
// are deleted; complete layers from an earlier run are kept and reused.
func Open(root string) (*Store, error) {
	if err := prepareRoot(root); err != nil {
		return nil, err
	}
	return &Store{root: root, refs: map[Key]int{}, at: map[Key]string{}, pending: map[Key]*fill{}}, nil
}

func prepareRoot(root string) error {
	if err := os.RemoveAll(filepath.Join(root, "tmp")); err != nil {
		return fmt.Errorf("layer store: clear temp: %w", err)
	}
	for _, d := range []string{"layers", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return fmt.Errorf("layer store: %w", err)
		}
	}
	return nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// AddRoot makes dir, a directory on another file system (the pod's
// encrypted trusted_store), the place new layers are unpacked to. Layers
// already stored stay where they are and are still found, so images in use
// keep working.
func (s *Store) AddRoot(dir string) error {
	dir = filepath.Clean(dir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if dir == s.root || slices.Contains(s.added, dir) {
		return errs.Newf(errdefs.ErrAlreadyExists, "layer store root %s is already in use", dir)
	}
	if err := prepareRoot(dir); err != nil {
		return err
	}
	s.added = append(s.added, dir)
	return nil
}

// RemoveRoot stops using a root AddRoot gave, before its file system goes
// away. It refuses while a layer in it is referenced or being unpacked.
func (s *Store) RemoveRoot(dir string) error {
	dir = filepath.Clean(dir)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.added, dir)
	if i < 0 {
		return errs.Newf(errdefs.ErrNotFound, "layer store root %s was not added", dir)
	}
	for id, root := range s.at {
		if root == dir {
			return errs.Newf(errdefs.ErrFailedPrecondition, "layer store root %s still holds layer %s in use", dir, id)
		}
	}
	for id, f := range s.pending {
		if f.root == dir {
			return errs.Newf(errdefs.ErrFailedPrecondition, "layer store root %s: layer %s is being unpacked there", dir, id)
		}
	}
	s.added = slices.Delete(s.added, i, i+1)
	return nil
}

// newest is the root new layers go to. Callers hold mu.
func (s *Store) newest() string {
	if n := len(s.added); n > 0 {
		return s.added[n-1]
	}
	return s.root
}

// locate finds the root holding the complete layer id, newest first.
// Callers hold mu.
func (s *Store) locate(id Key) (string, bool) {
	if root, ok := s.at[id]; ok {
		return root, true
	}
	for i := len(s.added) - 1; i >= -1; i-- {
		root := s.root
		if i >= 0 {
			root = s.added[i]
		}
		if _, err := os.Lstat(layerPath(root, id)); err == nil {
			return root, true
		}
	}
	return "", false
}

func layerPath(root string, id Key) string {
	return filepath.Join(root, "layers", id.name())
}

// Path is where the layer named by id lives once complete: where it is
// stored, or else where it would be unpacked now.
func (s *Store) Path(id Key) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	root, ok := s.locate(id)
	if !ok {
		root = s.newest()
	}
	return layerPath(root, id)
}

// Acquire returns the directory of layer id, calling fill when the store
// does not hold it yet, and takes one reference. The caller must Release
// it. fill runs at most once at a time per id; other callers wait for it.
// fill must produce exactly what id names: verify the blob against
// id.Blob, decrypt with the key id.KeyDigest commits to, and check the
// result against id.DiffID.
func (s *Store) Acquire(ctx context.Context, id Key, f Fill) (string, bool, error) {
	if err := id.Validate(); err != nil {
		return "", false, err
	}
	for {
		s.mu.Lock()
		if p, ok := s.pending[id]; ok {
			s.mu.Unlock()
			select {
			case <-p.done:
			case <-ctx.Done():
				return "", false, ctx.Err()
			}
			if p.err != nil {
				// The filler's failure (e.g. its context ended) need not
				// be ours: try again as filler.
				if ctx.Err() != nil {
					return "", false, ctx.Err()
				}
			}
			continue
		}
		if root, ok := s.locate(id); ok {
			s.refs[id]++
			s.at[id] = root
			s.mu.Unlock()
			return layerPath(root, id), false, nil
		}
		p := &fill{done: make(chan struct{}), root: s.newest()}
		s.pending[id] = p
		s.mu.Unlock()

		final := layerPath(p.root, id)
		p.err = s.fill(ctx, id, p.root, final, f)
		s.mu.Lock()
		delete(s.pending, id)
		if p.err == nil {
			s.refs[id]++
			s.at[id] = p.root
		}
		s.mu.Unlock()
		close(p.done)
		if p.err != nil {
			return "", false, p.err
		}
		return final, true, nil
	}
}

// fill unpacks into root's tmp, on the same file system as final, so
// that the commit is one rename.
func (s *Store) fill(ctx context.Context, id Key, root, final string, f Fill) error {
	tmp, err := os.MkdirTemp(filepath.Join(root, "tmp"), id.name()[:12]+"-")
	if err != nil {
		return fmt.Errorf("layer store: %w", err)
	}
	layer := filepath.Join(tmp, "fs")
	if err := os.Mkdir(layer, 0o755); err != nil {
		return errors.Join(err, os.RemoveAll(tmp))
	}
	if err := f(ctx, layer); err != nil {
		return errors.Join(err, removeAll(tmp))
	}
	if err := os.Rename(layer, final); err != nil {
		return errors.Join(fmt.Errorf("layer store: commit %s: %w", id, err), removeAll(tmp))
	}
	return removeAll(tmp)
}

// Release drops one reference; the layer's directory is removed when no
// reference is left.
func (s *Store) Release(id Key) error {
	s.mu.Lock()
	n, ok := s.refs[id]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("layer %s is not held: %w", id, errdefs.ErrNotFound)
	}
	if n > 1 {
		s.refs[id] = n - 1
		s.mu.Unlock()
		return nil
	}
	root := s.at[id]
	delete(s.refs, id)
	delete(s.at, id)
	// Move it out of the namespace under the lock so a concurrent Acquire
	// cannot adopt a directory being deleted.
	final := layerPath(root, id)
	doomed, err := os.MkdirTemp(filepath.Join(root, "tmp"), "gc-")
	if err == nil {
		err = os.Rename(final, filepath.Join(doomed, "fs"))
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("layer store: collect %s: %w", id, err)
	}
	return removeAll(doomed)
}

// Refs reports the reference count of a layer, for tests and diagnostics.
func (s *Store) Refs(id Key) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refs[id]
}

// removeAll also clears immutable-free read-only directories that RemoveAll
// could not enter; layers may contain mode 0 directories.
func removeAll(p string) error {
	if err := os.RemoveAll(p); err != nil {
		_ = filepath.Walk(p, func(q string, fi os.FileInfo, err error) error {
			if err == nil && fi.IsDir() {
				_ = os.Chmod(q, 0o700)
			}
			return nil
		})
		return os.RemoveAll(p)
	}
	return nil
}
