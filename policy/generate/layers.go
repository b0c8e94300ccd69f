package generate

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/cocoon-tee/cocoon/tools/layer"
)

// pinLayers builds every layer of every image as the node's EROFS
// snapshotter does (tools/layer) and records the dm-verity root hashes in
// partition order, top layer first, which is how runtime-rs numbers them
// and the agent stacks them. The root hash covers the whole layer, so a
// build downloads every layer; with a cache, hashes are kept by what
// decides them and an image whose layers are all cached is not built.
func pinLayers(ctx context.Context, o Options, images map[string]*ImageInfo) error {
	m, err := layer.LookupMkfs(ctx, o.Mkfs)
	if err != nil {
		return fmt.Errorf("pin layers: %w", err)
	}
	var cache *Cache
	if o.Images.CacheDir != "" {
		if cache, err = OpenCache(o.Images.CacheDir); err != nil {
			return err
		}
	}
	refs := make([]string, 0, len(images))
	for ref := range images {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	built := map[string][]string{}
	for _, ref := range refs {
		info := images[ref]
		if h, ok := built[info.Pinned]; ok {
			info.RootHashes = h
			continue
		}
		h, ok := cachedHashes(cache, m, info.Layers)
		if !ok {
			if h, err = layerHashes(ctx, m, info.Pinned, o.Images, cache); err != nil {
				return fmt.Errorf("pin layers of %s: %w", ref, err)
			}
		}
		info.RootHashes, built[info.Pinned] = h, h
	}
	return nil
}

// layerHashKey names a layer's root hash in the cache: the hash depends
// only on the blob, the mkfs.erofs version, its options and the dm-verity
// salt (layer.Build).
func layerHashKey(blobDigest, mkfsVersion string, mkfsArgs []string, salt []byte) digest.Digest {
	return digest.FromString(strings.Join([]string{"cocoon-layer-roothash/1", blobDigest, mkfsVersion, strings.Join(mkfsArgs, " "), hex.EncodeToString(salt)}, "\n"))
}

func layerKey(m *layer.Mkfs, blobDigest string) digest.Digest {
	return layerHashKey(blobDigest, m.Version, layer.MkfsArgs, layer.DefaultSalt)
}

// cachedHashes returns an image's root hashes, partition 1 first, when
// the cache has every one of its layers (lowest first).
func cachedHashes(c *Cache, m *layer.Mkfs, layers []string) ([]string, bool) {
	if c == nil || len(layers) == 0 {
		return nil, false
	}
	hashes := make([]string, len(layers))
	for i, l := range layers {
		h, ok := c.LayerHash(layerKey(m, l))
		if !ok {
			return nil, false
		}
		hashes[layer.Partition(i, len(layers))-1] = h
	}
	return hashes, true
}

// layerHashes builds the layers of the image pinned by digest in a
// temporary directory and returns their root hashes, partition 1 first,
// recording each in the cache when there is one.
func layerHashes(ctx context.Context, m *layer.Mkfs, pinned string, o ImageOptions, c *Cache) ([]string, error) {
	dir, err := os.MkdirTemp("", "cocoon-layers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res, err := layer.BuildImage(ctx, m, "docker://"+pinned, dir, layer.ImageOptions{
		RegistriesConf: o.RegistriesConf, AuthFile: o.AuthFile, OS: o.OS, Arch: o.Arch,
	})
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("image %s has no layers", pinned)
	}
	hashes := make([]string, len(res))
	for i, r := range res {
		h := r.Verity.RootHashHex()
		hashes[layer.Partition(i, len(res))-1] = h
		if c != nil {
			if err := c.PutLayerHash(layerKey(m, r.BlobDigest), h); err != nil {
				return nil, err
			}
		}
	}
	return hashes, nil
}
