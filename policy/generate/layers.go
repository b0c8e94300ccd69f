package generate

import (
	"context"
	"fmt"
	"os"
	"sort"

	"github.com/cocoon-tee/cocoon/tools/layer"
)

// pinLayers builds every layer of every image as the node's EROFS
// snapshotter does (tools/layer) and records the dm-verity root hashes in
// partition order, top layer first, which is how runtime-rs numbers them
// and the agent stacks them. It downloads every layer: the root hash
// covers the whole layer.
func pinLayers(ctx context.Context, o Options, images map[string]*ImageInfo) error {
	m, err := layer.LookupMkfs(ctx, o.Mkfs)
	if err != nil {
		return fmt.Errorf("pin layers: %w", err)
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
		h, err := layerHashes(ctx, m, info.Pinned, o.Images)
		if err != nil {
			return fmt.Errorf("pin layers of %s: %w", ref, err)
		}
		info.RootHashes, built[info.Pinned] = h, h
	}
	return nil
}

// layerHashes builds the layers of the image pinned by digest in a
// temporary directory and returns their root hashes, partition 1 first.
func layerHashes(ctx context.Context, m *layer.Mkfs, pinned string, o ImageOptions) ([]string, error) {
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
		hashes[layer.Partition(i, len(res))-1] = r.Verity.RootHashHex()
	}
	return hashes, nil
}
