package image

import (
	"github.com/containerd/errdefs"
)

// AddLayerRoot makes dir, the mounted file system of the pod's
// trusted_store, the place new image layers are unpacked to, so that large
// images land on an encrypted disk instead of guest memory (Kata's agent
// mounts it on its image work directory, src/agent/src/rpc.rs
// cdh_handler_trusted_storage). Layers already stored stay where they are
// and keep being used. Containers' writable upper directories stay in the
// driver's own directory.
func (d *Driver) AddLayerRoot(dir string) error {
	if d.store == nil {
		return errdefs.ErrFailedPrecondition.WithMessage("image driver has no layer store to extend")
	}
	return d.store.AddRoot(dir)
}

// RemoveLayerRoot stops unpacking to dir before its file system goes; it
// refuses while an image layer in it is still in use.
func (d *Driver) RemoveLayerRoot(dir string) error {
	if d.store == nil {
		return errdefs.ErrFailedPrecondition.WithMessage("image driver has no layer store")
	}
	return d.store.RemoveRoot(dir)
}
