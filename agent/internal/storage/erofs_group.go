package storage

import (
	"slices"

	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
)

// DriverMultiLayerErofs is Kata's name for a host-shared EROFS rootfs
// (src/agent/src/storage/multi_layer_erofs.rs DRIVER_MULTI_LAYER_EROFS).
// runtime-rs does not send it as a driver: it sends each layer as a block
// storage ("blk", "scsi", ...) marked X-kata.multi-layer=true, all with the
// container's rootfs as mount point (runtime-rs erofs_rootfs.rs). Kata's
// agent gathers every marked storage of the request into one group; the
// manager does the same (groupLayers) and hands the group to this driver.
const DriverMultiLayerErofs = "erofs.multi-layer"

// maxLayers bounds the layers of one group: a GPT disk has at most 128
// partitions, and overlayfs stacks at most 500 lowers.
const maxLayers = 128

// isLayerStorage reports whether s belongs to a host-shared EROFS group:
// marked multi-layer, sent with Kata's driver name, or a plain EROFS block
// storage with dm-verity options (one verified layer, mounted as it is).
func isLayerStorage(s *Storage) bool {
	if s == nil {
		return false
	}
	return s.Driver == DriverMultiLayerErofs || slices.Contains(s.Options, erofs.OptMultiLayer) ||
		(s.Fstype == "erofs" && slices.Contains(s.Options, erofs.OptVerityEnabled))
}

// groupLayers replaces the layer storages of one request by a single
// storage for DriverMultiLayerErofs that carries them in Layers, at the
// place of the first one; the others stay in order. Like Kata's agent it
// makes one group per request. The group's mount point is the upper
// layer's, else the first layer's; every member must name that same mount
// point, since they are one rootfs and the manager counts references by
// mount point.
func groupLayers(storages []*Storage) ([]*Storage, error) {
	first := slices.IndexFunc(storages, isLayerStorage)
	if first < 0 {
		return storages, nil
	}
	var members []*Storage
	out := make([]*Storage, 0, len(storages))
	at := 0
	for i, s := range storages {
		if !isLayerStorage(s) {
			out = append(out, s)
			continue
		}
		members = append(members, s)
		if i == first {
			at = len(out)
			out = append(out, nil) // the group goes here
		}
	}
	if len(members) > maxLayers+1 {
		return nil, invalid("%d host-shared EROFS storages, at most %d layers and an upper", len(members), maxLayers)
	}
	mp := members[0].MountPoint
	for _, s := range members {
		if slices.Contains(s.Options, erofs.OptOverlayUpper) {
			mp = s.MountPoint
			break
		}
	}
	for _, s := range members {
		if s.MountPoint != mp {
			return nil, invalid("host-shared EROFS storages name two mount points, %q and %q: they must form one rootfs", mp, s.MountPoint)
		}
	}
	out[at] = &Storage{Driver: DriverMultiLayerErofs, MountPoint: mp, Layers: members}
	return out, nil
}
