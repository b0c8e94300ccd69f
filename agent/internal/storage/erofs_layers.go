package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
)

// layer is one lower layer of a group, checked.
type layer struct {
	s    *Storage
	opts *erofs.LayerOptions
	name string // for messages
}

// multiLayerErofs mounts a host-shared EROFS rootfs: every layer through
// dm-verity and read-only, stacked with overlayfs under a writable upper
// directory in guest memory, on the group's mount point. A plain EROFS
// block storage with dm-verity (a group of one unmarked layer) is mounted
// verified and read-only on its own mount point.
//
// Which root hashes are acceptable is the policy's decision: the request
// carries every layer's X-kata.dmverity.roothash, and a policy that pins
// them refuses the CreateContainer before this driver runs
// (docs/layers.md). The driver refuses what no policy could make safe:
// a layer without dm-verity, and a kernel that cannot verify.
func (b *builtin) multiLayerErofs(ctx context.Context, r Request) (Mounted, error) {
	s := r.Storage
	if len(s.Layers) == 0 {
		return Mounted{}, invalid("storage driver %s: a host-shared EROFS storage must be marked %s (Kata runtime-rs sends block storages)",
			DriverMultiLayerErofs, erofs.OptMultiLayer)
	}
	owner := r.Owner
	if owner == "" {
		owner = "sandbox"
	}
	if err := safepath.ValidateID("container", owner); err != nil {
		return Mounted{}, err
	}
	set, err := checkLayers(owner, s.Layers)
	if err != nil {
		return Mounted{}, err
	}
	if err := b.verityPreflight(); err != nil {
		return Mounted{}, err
	}
	if set.upper != nil {
		if err := b.cryptPreflight(); err != nil {
			return Mounted{}, fmt.Errorf("writable upper disk %s: %w", set.upper.name, err)
		}
	}
	g := &layerGroup{b: b}
	mt, err := g.mount(ctx, owner, s.MountPoint, set)
	if err != nil {
		return Mounted{}, errors.Join(err, g.undo(context.WithoutCancel(ctx)))
	}
	return mt, nil
}

// layerSet is a group's members, checked: the lowers in overlay order
// (topmost first), the explicit upper disk if the host sent one, and
// whether the group is a plain verified EROFS storage rather than a rootfs.
type layerSet struct {
	lowers []layer
	upper  *layer
	plain  bool
	mkdirs []erofs.MkdirDirective // every member's X-kata.mkdir.path, in order
}

// checkLayers parses every member before anything is touched.
func checkLayers(owner string, members []*Storage) (layerSet, error) {
	var set layerSet
	for i, m := range members {
		lo, err := erofs.ParseOptions(m.Options)
		if err != nil {
			return layerSet{}, fmt.Errorf("container %s storage %d: %w", owner, i, err)
		}
		set.mkdirs = append(set.mkdirs, lo.Mkdirs...)
		if isUpper(m, lo) {
			if set.upper != nil {
				return layerSet{}, invalid("container %s: two writable upper disks (%s), at most one", owner, erofs.OptOverlayUpper)
			}
			u, err := checkUpper(owner, i, m, lo)
			if err != nil {
				return layerSet{}, err
			}
			set.upper = u
			continue
		}
		if m.Fstype != "erofs" {
			return layerSet{}, invalid("container %s storage %d: fstype %q, want erofs", owner, i, m.Fstype)
		}
		name := fmt.Sprintf("container %s layer %d (%s", owner, len(set.lowers)+1, m.Source)
		if lo.Partition > 0 {
			name += " partition " + strconv.Itoa(lo.Partition)
		}
		name += ")"
		if lo.Verity == nil {
			return layerSet{}, denied("erofs layer %s has no dm-verity root hash (%s): the host could change its contents unnoticed; refusing it",
				name, erofs.OptVerityEnabled)
		}
		set.lowers = append(set.lowers, layer{s: m, opts: lo, name: name})
	}
	if len(set.lowers) == 0 {
		return layerSet{}, invalid("container %s: a writable upper disk without any EROFS lower layer", owner)
	}
	lowers := set.lowers
	set.plain = set.upper == nil && len(lowers) == 1 && !lowers[0].opts.MultiLayer && lowers[0].s.Driver != DriverMultiLayerErofs
	if err := checkMkdirs(owner, set); err != nil {
		return layerSet{}, err
	}
	gpt := lowers[0].opts.GPTPartitioned
	seen := map[string]bool{}
	for _, l := range lowers {
		if l.opts.GPTPartitioned != gpt {
			return layerSet{}, invalid("container %s: some layers are GPT partitions and some are not", owner)
		}
		if gpt && l.opts.Partition == 0 {
			return layerSet{}, invalid("erofs layer %s: %s without %s", l.name, erofs.OptGPTPartitioned, erofs.OptPartition)
		}
		key := l.s.Source + "#" + strconv.Itoa(l.opts.Partition)
		if seen[key] {
			return layerSet{}, invalid("erofs layer %s is given twice", l.name)
		}
		seen[key] = true
	}
	// Kata's agent orders GPT layers by partition number, lowest first,
	// and the first lowerdir is the topmost layer (multi_layer_erofs.rs
	// handle_multi_layer_erofs_group).
	if gpt {
		slices.SortStableFunc(lowers, func(a, b layer) int { return a.opts.Partition - b.opts.Partition })
	}
	return set, nil
}

// layerGroup is what one group has set up so far, undone in reverse.
type layerGroup struct {
	b       *builtin
	watch   *verityWatch // nil when the kernel's uevents cannot be read
	verity  []*verityDevice
	crypt   *encryptedDisk // the upper disk's mapping, if there is one
	unmount []func(context.Context) error
	dir     string // the private directory of the lowers and the upper
}

func (g *layerGroup) mount(ctx context.Context, owner, mountPoint string, set layerSet) (Mounted, error) {
	b := g.b
	lowers, plain := set.lowers, set.plain
	// Watch before any mapping exists, so no failure goes unseen. Without
	// uevents the layers are still verified (a bad block is EIO to the
	// reader); only the prompt report is lost, so this is no refusal.
	if w, err := watchVerity(b.log, b.opts.Incidents); err != nil {
		b.log.WarnContext(ctx, "dm-verity failures will be reported at release only", "container", owner, "error", err.Error())
	} else {
		g.watch = w
	}
	devs := make([]string, len(lowers))
	for i, l := range lowers {
		part, err := b.layerDevice(ctx, l)
		if err != nil {
			return Mounted{}, err
		}
		v, err := b.openVerity(part, l.name, l.opts.Verity)
		if err != nil {
			return Mounted{}, err
		}
		g.verity = append(g.verity, v)
		if g.watch != nil {
			g.watch.add(v)
		}
		devs[i] = v.path
	}
	ro := MountOptions{Flags: unix.MS_RDONLY | unix.MS_NODEV | unix.MS_NOSUID, FSGid: -1, Mode: -1}
	if plain {
		if err := g.mountAt(mountPoint, devs[0], "erofs", ro); err != nil {
			return Mounted{}, err
		}
		b.log.InfoContext(ctx, "erofs layer mounted", "layer", lowers[0].name, "root_hash", lowers[0].opts.Verity.RootHash, "mount_point", mountPoint)
		return Mounted{Path: mountPoint, Cleanup: g.undo}, nil
	}
	// Kata's place for the group's private mounts: <run dir>/<id>/multi-layer.
	g.dir = filepath.Join(b.opts.KataRunDir, owner, "multi-layer")
	lowerDirs := make([]string, len(lowers))
	for i := range lowers {
		lowerDirs[i] = filepath.Join(g.dir, "lower-"+strconv.Itoa(i))
		if err := g.mountAt(lowerDirs[i], devs[i], "erofs", ro); err != nil {
			return Mounted{}, err
		}
	}
	// Kata's upper: the disk's file system (or a directory in guest
	// memory) on <dir>/upper, the overlay's upper and work directories in
	// it (multi_layer_erofs.rs:250-255, 422-427).
	upperDisk := "guest memory"
	if set.upper != nil {
		dev, err := g.mountUpper(ctx, owner, *set.upper, filepath.Join(g.dir, upperDirName))
		if err != nil {
			return Mounted{}, err
		}
		upperDisk = dev
	}
	upperMount := filepath.Join(g.dir, "upper")
	if err := g.makeDirs(upperMount, set.mkdirs); err != nil {
		return Mounted{}, err
	}
	upper, work := filepath.Join(upperMount, upperDirName), filepath.Join(upperMount, workDirName)
	for _, d := range []string{upper, work} {
		t, err := b.roots.prepare(d, false)
		if err != nil {
			return Mounted{}, fmt.Errorf("overlay %s: %w", filepath.Base(d), err)
		}
		t.close()
	}
	o := MountOptions{FSGid: -1, Mode: -1, Data: []string{
		"lowerdir=" + strings.Join(lowerDirs, ":"), "upperdir=" + upper, "workdir=" + work}}
	if err := g.mountAt(mountPoint, "overlay", "overlay", o); err != nil {
		return Mounted{}, err
	}
	hashes := make([]string, len(lowers))
	for i, l := range lowers {
		hashes[i] = l.opts.Verity.RootHash
	}
	b.log.InfoContext(ctx, "erofs layers mounted", "container", owner, "layers", len(lowers), "root_hashes", strings.Join(hashes, ","),
		"upper", upperDisk, "mkdirs", len(set.mkdirs), "mount_point", mountPoint)
	return Mounted{Path: mountPoint, Cleanup: g.undo}, nil
}

// mountAt mounts source on p (created under the storage roots if missing)
// and remembers how to unmount it.
func (g *layerGroup) mountAt(p, source, fstype string, o MountOptions) error {
	t, err := g.b.roots.prepare(p, false)
	if err != nil {
		return err
	}
	undo, err := mount(t, source, fstype, o)
	if err != nil {
		return err
	}
	g.unmount = append(g.unmount, undo)
	return nil
}

// undo unmounts newest first, then removes the verity mappings (reporting
// any corruption they saw) and the private directory with the upper's
// data, which lives in guest memory and dies with the container.
func (g *layerGroup) undo(ctx context.Context) error {
	var errs []error
	for i := len(g.unmount) - 1; i >= 0; i-- {
		if err := g.unmount[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	g.unmount = nil
	if len(errs) > 0 {
		// A layer still mounted keeps its mapping busy; leave both, and
		// keep watching them.
		return errors.Join(errs...)
	}
	if g.watch != nil {
		g.watch.close()
		g.watch = nil
	}
	for i := len(g.verity) - 1; i >= 0; i-- {
		if err := g.verity[i].close(ctx, g.b); err != nil {
			errs = append(errs, err)
		}
	}
	g.verity = nil
	if g.crypt != nil {
		if err := g.crypt.close(ctx); err != nil {
			errs = append(errs, err)
		}
		g.crypt = nil
	}
	if g.dir != "" {
		if err := os.RemoveAll(g.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// layerDevice finds the layer's disk as the block drivers do, then its
// partition when the disk is GPT-partitioned, and checks it is a block
// device under /dev.
func (b *builtin) layerDevice(ctx context.Context, l layer) (string, error) {
	var disk string
	var err error
	switch src := l.s.Source; {
	case l.s.Driver == DriverSCSI:
		disk, err = b.dev.scsi(ctx, src)
	case l.s.Driver == DriverMmioBlk || strings.HasPrefix(src, "/dev/"):
		disk, err = b.dev.named(ctx, src, "")
	default:
		disk, err = b.dev.pci(ctx, src)
	}
	if err != nil {
		return "", fmt.Errorf("erofs layer %s: %w", l.name, err)
	}
	if l.opts.Partition > 0 {
		if disk, err = b.partition(ctx, disk, l.opts.Partition); err != nil {
			return "", fmt.Errorf("erofs layer %s: %w", l.name, err)
		}
	}
	if err := b.checkBlockDevice(disk); err != nil {
		return "", fmt.Errorf("erofs layer %s: %w", l.name, err)
	}
	return disk, nil
}

// partition waits for partition n of disk, found by the number the kernel
// read from the partition table (sysfs "partition"), not by a name.
func (b *builtin) partition(ctx context.Context, disk string, n int) (string, error) {
	base := filepath.Base(disk)
	want := strconv.Itoa(n)
	return b.dev.wait(ctx, fmt.Sprintf("partition %d of %s", n, disk), func() (string, bool) {
		ents, err := os.ReadDir(filepath.Join(b.opts.SysfsRoot, "class", "block", base))
		if err != nil {
			return "", false
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), base) {
				continue
			}
			num, err := os.ReadFile(filepath.Join(b.opts.SysfsRoot, "class", "block", base, e.Name(), "partition"))
			if err == nil && strings.TrimSpace(string(num)) == want {
				return e.Name(), true
			}
		}
		return "", false
	})
}
