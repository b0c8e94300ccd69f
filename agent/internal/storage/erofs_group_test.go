package storage

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

const (
	hashA = "ea1997fa68592d39cbe85d237d78652fed1cfe7dcb6780dfafa6e0d69ee83658"
	hashB = "0b3a5e0ee3a4dca1c1f8a4d1d9b0f1c6c1a61f0a7e1e1c3e0c3a2e1d9b7a6c51"
)

// kataLayer is a lower layer as runtime-rs sends it in GPT mode
// (erofs_rootfs.rs: driver and source of the merged disk, fstype erofs,
// the container's rootfs as mount point, X-kata options).
func kataLayer(part int, hash, mp string) *Storage {
	return &Storage{
		Driver: "blk", Source: "02", Fstype: "erofs", MountPoint: mp,
		Options: []string{
			"X-kata.overlay-lower", "X-kata.multi-layer=true", "X-kata.gpt-partitioned=true",
			fmt.Sprintf("X-kata.partition-number=%d", part), "X-kata.dmverity-enabled=true",
			"X-kata.dmverity.roothash=" + hash, "X-kata.dmverity.hashoffset=1052672",
			"X-kata.dmverity.no-superblock=false",
			"X-kata.dmverity.salt=" + strings.Repeat("0", 64),
		},
	}
}

func TestGroupLayers(t *testing.T) {
	const mp = "/run/kata-containers/shared/containers/c1/rootfs"
	vol := &Storage{Driver: "ephemeral", MountPoint: "/run/kata-containers/sandbox/ephemeral/v"}
	l3, l1, l2 := kataLayer(3, hashA, mp), kataLayer(1, hashB, mp), kataLayer(2, hashA, mp)
	out, err := groupLayers([]*Storage{vol, l3, l1, l2})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0] != vol || out[1].Driver != DriverMultiLayerErofs || out[1].MountPoint != mp {
		t.Fatalf("grouped to %+v", out)
	}
	if g := out[1].Layers; len(g) != 3 || g[0] != l3 || g[1] != l1 || g[2] != l2 {
		t.Fatalf("group members %v", g)
	}
	// Nothing to group: the list is the caller's.
	plain := []*Storage{vol, nil}
	if out, err := groupLayers(plain); err != nil || len(out) != 2 || out[0] != vol || out[1] != nil {
		t.Fatalf("%v %v", out, err)
	}
	// A host null storage next to a group stays where it was.
	if out, err := groupLayers([]*Storage{nil, l1}); err != nil || out[0] != nil || out[1].Driver != DriverMultiLayerErofs {
		t.Fatalf("%v %v", out, err)
	}
	// A plain EROFS block storage with dm-verity is a group of one.
	single := kataLayer(1, hashA, "/run/kata-containers/sandbox/storage/x")
	single.Options = []string{"X-kata.dmverity-enabled=true", "X-kata.dmverity.roothash=" + hashA, "X-kata.dmverity.hashoffset=4096"}
	if out, err := groupLayers([]*Storage{single}); err != nil || len(out[0].Layers) != 1 {
		t.Fatalf("%v %v", out, err)
	}
	// Layers of one rootfs on two mount points cannot be one group.
	_, err = groupLayers([]*Storage{l1, kataLayer(2, hashA, mp+"2")})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("two mount points: %v", err)
	}
}

func TestCheckLayers(t *testing.T) {
	const mp = "/run/kata-containers/c1/rootfs"
	// GPT layers go topmost first: by partition number, as Kata's agent.
	set, err := checkLayers("c1", []*Storage{kataLayer(3, hashA, mp), kataLayer(1, hashB, mp), kataLayer(2, hashA, mp)})
	if err != nil || set.plain || set.upper != nil {
		t.Fatal(err, set)
	}
	lowers := set.lowers
	var order []int
	for _, l := range lowers {
		order = append(order, l.opts.Partition)
	}
	if fmt.Sprint(order) != "[1 2 3]" || lowers[0].name != "container c1 layer 2 (02 partition 1)" {
		t.Fatalf("order %v, first %q", order, lowers[0].name)
	}

	noVerity := kataLayer(1, hashA, mp)
	noVerity.Options = noVerity.Options[:4]
	// runtime-rs's rw layer (erofs_rootfs.rs:575-626): containerd's mount
	// options without "loop", then the two markers.
	upper := &Storage{Driver: "blk", Source: "03", Fstype: "ext4", MountPoint: mp, Options: []string{"rw", "X-kata.overlay-upper", "X-kata.multi-layer=true"}}
	set, err = checkLayers("c1", []*Storage{upper, kataLayer(1, hashA, mp)})
	if err != nil || set.plain || set.upper == nil || set.upper.s != upper || len(set.lowers) != 1 || set.upper.name != "container c1 upper (03)" {
		t.Fatalf("explicit upper: %v %+v", err, set)
	}
	// Kata takes an ext4 member marked multi-layer as the upper too
	// (multi_layer_erofs.rs:535-539 is_upper_storage).
	markedOnly := &Storage{Driver: "blk", Source: "03", Fstype: "ext4", MountPoint: mp, Options: []string{"X-kata.multi-layer=true"}}
	if set, err := checkLayers("c1", []*Storage{kataLayer(1, hashA, mp), markedOnly}); err != nil || set.upper == nil || set.upper.s != markedOnly {
		t.Fatalf("ext4 marked multi-layer: %v %+v", err, set)
	}
	withOpts := func(fstype string, opts ...string) *Storage {
		return &Storage{Driver: "blk", Source: "03", Fstype: fstype, MountPoint: mp, Options: append([]string{"X-kata.overlay-upper", "X-kata.multi-layer=true"}, opts...)}
	}
	twice := []*Storage{kataLayer(1, hashA, mp), kataLayer(1, hashB, mp)}
	mixed := kataLayer(2, hashA, mp)
	mixed.Options = mixed.Options[4:]
	ext4 := kataLayer(1, hashA, mp)
	ext4.Fstype = "ext4"
	for name, c := range map[string]struct {
		in   []*Storage
		want error
	}{
		"layer without dm-verity":   {[]*Storage{kataLayer(1, hashA, mp), noVerity}, errdefs.ErrPermissionDenied},
		"two upper disks":           {[]*Storage{upper, withOpts("ext4"), kataLayer(1, hashA, mp)}, errdefs.ErrInvalidArgument},
		"upper not ext4":            {[]*Storage{withOpts("xfs"), kataLayer(1, hashA, mp)}, errdefs.ErrInvalidArgument},
		"upper mount option":        {[]*Storage{withOpts("ext4", "rw", "data=journal"), kataLayer(1, hashA, mp)}, errdefs.ErrInvalidArgument},
		"upper read-only":           {[]*Storage{withOpts("ext4", "ro"), kataLayer(1, hashA, mp)}, errdefs.ErrInvalidArgument},
		"upper with dm-verity":      {[]*Storage{withOpts("ext4", "X-kata.dmverity-enabled=true", "X-kata.dmverity.roothash="+hashA), kataLayer(1, hashA, mp)}, errdefs.ErrInvalidArgument},
		"upper on a partition":      {[]*Storage{withOpts("ext4", "X-kata.gpt-partitioned=true", "X-kata.partition-number=2"), kataLayer(1, hashA, mp)}, errdefs.ErrInvalidArgument},
		"upper without lowers":      {[]*Storage{upper}, errdefs.ErrInvalidArgument},
		"partition twice":           {twice, errdefs.ErrInvalidArgument},
		"GPT and non-GPT":           {[]*Storage{kataLayer(1, hashA, mp), mixed}, errdefs.ErrInvalidArgument},
		"not erofs":                 {[]*Storage{ext4}, errdefs.ErrInvalidArgument},
		"two root hashes for layer": {[]*Storage{{Fstype: "erofs", Options: append(kataLayer(1, hashA, mp).Options, "X-kata.dmverity.roothash="+hashB)}}, errdefs.ErrInvalidArgument},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := checkLayers("c1", c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func FuzzGroupLayers(f *testing.F) {
	f.Add("X-kata.multi-layer=true\nX-kata.overlay-lower", "/a", "X-kata.overlay-upper\nX-kata.multi-layer=true", "/a")
	f.Add("X-kata.dmverity-enabled=true", "/a", "ro", "/b")
	f.Fuzz(func(t *testing.T, o1, mp1, o2, mp2 string) {
		in := []*Storage{
			{Driver: "blk", Fstype: "erofs", Options: strings.Split(o1, "\n"), MountPoint: mp1},
			{Driver: "blk", Fstype: "erofs", Options: strings.Split(o2, "\n"), MountPoint: mp2},
		}
		out, err := groupLayers(in)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error not INVALID_ARGUMENT: %v", err)
			}
			return
		}
		n := 0
		for _, s := range out {
			n += max(len(s.Layers), 1)
			if len(s.Layers) > 0 {
				if _, err := checkLayers("c1", s.Layers); err != nil && !errdefs.IsInvalidArgument(err) &&
					!errdefs.IsPermissionDenied(err) {
					t.Fatalf("checkLayers: unclassified error %v", err)
				}
			}
		}
		if n != len(in) {
			t.Fatalf("%d storages in, %d out", len(in), n)
		}
	})
}
