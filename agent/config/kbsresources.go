package config

import (
	"fmt"
	"path"
	"strings"
)

// KBSResource is one entry of cdh.kbs_resources: a KBS resource the agent
// fetches at start-up and writes to Path, like a [[credentials]] entry of
// cdh.toml.
type KBSResource struct {
	URI  string
	Path string
}

// maxKBSResources bounds the list a host can ask for.
const maxKBSResources = 64

// ParseKBSResources parses CDH's "<kbs uri>::<path>,<kbs uri>::<path>" form
// (hub/src/config/mod.rs extend_credentials_from_kernel_cmdline). CDH skips
// entries without "::"; here a malformed entry is an error, like every other
// malformed value of a known key. Where a path may point is the attestation
// side's decision (it confines credentials to one directory).
func ParseKBSResources(s string) ([]KBSResource, error) {
	var out []KBSResource
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			continue
		}
		uri, p, ok := strings.Cut(item, "::")
		if !ok {
			return nil, fmt.Errorf("kbs resource %q: want <kbs:///repo/type/tag>::<path>", item)
		}
		if !strings.HasPrefix(uri, "kbs://") {
			return nil, fmt.Errorf("kbs resource %q: not a kbs:// uri", uri)
		}
		if !path.IsAbs(p) || path.Clean(p) != p {
			return nil, fmt.Errorf("kbs resource %q: target %q is not a clean absolute path", uri, p)
		}
		out = append(out, KBSResource{URI: uri, Path: p})
		if len(out) > maxKBSResources {
			return nil, fmt.Errorf("more than %d kbs resources", maxKBSResources)
		}
	}
	return out, nil
}
