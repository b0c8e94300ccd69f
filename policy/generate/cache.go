package generate

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Cache is a content-addressed directory: manifests and config blobs under
// their digest, the /etc files found in an image under the digest of its
// layer list, and built layers' dm-verity root hashes under the digest of
// what decides them (layerHashKey). Entries are verified on read, so a
// damaged cache is a miss, never a wrong answer.
type Cache struct{ dir string }

// EtcFiles are an image's /etc/passwd and /etc/group.
type EtcFiles struct {
	Passwd string `json:"passwd"`
	Group  string `json:"group"`
}

// OpenCache creates the cache directory if needed.
func OpenCache(dir string) (*Cache, error) {
	for _, d := range []string{"blobs", "manifests", "etc", "layers"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	return &Cache{dir: dir}, nil
}

func (c *Cache) path(kind string, d digest.Digest) string {
	return filepath.Join(c.dir, kind, d.Algorithm().String()+"-"+d.Encoded())
}

// Blob returns a cached blob that still matches its digest.
func (c *Cache) Blob(d digest.Digest) ([]byte, bool) {
	if d.Validate() != nil {
		return nil, false
	}
	b, err := os.ReadFile(c.path("blobs", d))
	if err != nil || d.Algorithm().FromBytes(b) != d {
		return nil, false
	}
	return b, true
}

// PutBlob stores a blob already verified against d.
func (c *Cache) PutBlob(d digest.Digest, b []byte) error {
	return writeAtomic(c.path("blobs", d), b)
}

type cachedManifest struct {
	MediaType string `json:"media_type"`
	Body      []byte `json:"body"`
}

// Manifest returns a cached manifest by digest.
func (c *Cache) Manifest(d digest.Digest) ([]byte, string, bool) {
	if d.Validate() != nil {
		return nil, "", false
	}
	raw, err := os.ReadFile(c.path("manifests", d))
	if err != nil {
		return nil, "", false
	}
	var m cachedManifest
	if json.Unmarshal(raw, &m) != nil || d.Algorithm().FromBytes(m.Body) != d {
		return nil, "", false
	}
	return m.Body, m.MediaType, true
}

// PutManifest stores a manifest under its sha256 digest.
func (c *Cache) PutManifest(b []byte, mt string) error {
	raw, err := json.Marshal(cachedManifest{MediaType: mt, Body: b})
	if err != nil {
		return err
	}
	return writeAtomic(c.path("manifests", digest.FromBytes(b)), raw)
}

// EtcFiles returns the /etc files recorded for a layer list.
func (c *Cache) EtcFiles(key digest.Digest) (EtcFiles, bool) {
	var f EtcFiles
	raw, err := os.ReadFile(c.path("etc", key))
	if err != nil || json.Unmarshal(raw, &f) != nil {
		return EtcFiles{}, false
	}
	return f, true
}

// PutEtcFiles records the /etc files of a layer list.
func (c *Cache) PutEtcFiles(key digest.Digest, f EtcFiles) error {
	raw, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return writeAtomic(c.path("etc", key), raw)
}

// LayerHash returns the root hash recorded under key: 64 hex digits, or a
// miss.
func (c *Cache) LayerHash(key digest.Digest) (string, bool) {
	if key.Validate() != nil {
		return "", false
	}
	b, err := os.ReadFile(c.path("layers", key))
	if err != nil {
		return "", false
	}
	h := string(b)
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", false
	}
	return h, true
}

// PutLayerHash records a built layer's root hash.
func (c *Cache) PutLayerHash(key digest.Digest, hash string) error {
	return writeAtomic(c.path("layers", key), []byte(hash))
}

// writeAtomic writes through a temporary file and a rename, so concurrent
// runs never see half a file.
func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}
