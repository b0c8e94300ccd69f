package erofs

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// RootHashDenied is the refusal of a layer whose root hash, as the host
// states it, is not one the policy pins. The policy refuses the
// CreateContainer before any mount and prints this text (docs/layers.md has
// the Rego that does; its test checks the text is this one). It is
// PERMISSION_DENIED and names the layer and both hashes, because the usual cause is a node
// whose mkfs.erofs version or differ options differ from the ones the
// policy's hashes were built with (docs/layers.md), and the operator needs
// both values to tell which side moved.
type RootHashDenied struct {
	Layer   string   // e.g. "container c1 storage 2 (02 partition 2)": input.storages[2]
	Got     string   // the host's X-kata.dmverity.roothash
	Allowed []string // the policy's pinned hashes for this position
}

func (e *RootHashDenied) Error() string {
	want := "none"
	if len(e.Allowed) > 0 {
		want = strings.Join(e.Allowed, ", ")
	}
	return fmt.Sprintf("erofs layer %s: dm-verity root hash %s is not allowed by policy (policy pins %s); "+
		"the node built this layer differently from `cocoonctl layer build` (erofs-utils version or mkfs options)",
		e.Layer, e.Got, want)
}

// Is makes errors.Is(err, errdefs.ErrPermissionDenied) hold.
func (e *RootHashDenied) Is(target error) bool { return target == errdefs.ErrPermissionDenied }
