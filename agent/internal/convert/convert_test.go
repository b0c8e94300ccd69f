package convert

import (
	"reflect"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/internal/network"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/agent/internal/system"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/protocols/typespb"
)

// GetVolumeStats answers bytes, then inodes, each with its unit, and a
// healthy condition, as the kubelet's NodeGetVolumeStats reads them.
func TestVolumeStatsToProto(t *testing.T) {
	r := VolumeStatsToProto(&system.VolumeStats{Bytes: system.VolumeUsage{Total: 100, Available: 60, Used: 40}, Inodes: system.VolumeUsage{Total: 10, Available: 7, Used: 3}})
	u := r.GetUsage()
	if len(u) != 2 || u[0].GetUnit() != agentpb.VolumeUsage_BYTES || u[0].GetTotal() != 100 || u[0].GetUsed() != 40 ||
		u[1].GetUnit() != agentpb.VolumeUsage_INODES || u[1].GetAvailable() != 7 || r.GetVolumeCondition().GetAbnormal() {
		t.Fatalf("stats: %v", r)
	}
}

// Every field of a storage crosses, the fs_group policy included; a null
// entry stays null for the storage manager to refuse.
func TestStoragesFromProto(t *testing.T) {
	in := []*agentpb.Storage{
		{Driver: "blk", DriverOptions: []string{"o"}, Source: "s", Fstype: "ext4", Options: []string{"ro"}, MountPoint: "/m", Shared: true,
			FsGroup: &agentpb.FSGroup{GroupId: 7, GroupChangePolicy: typespb.FSGroupChangePolicy_OnRootMismatch}},
		{Driver: "local", FsGroup: &agentpb.FSGroup{GroupId: 8, GroupChangePolicy: typespb.FSGroupChangePolicy_Always}},
		nil,
	}
	want := []*storage.Storage{
		{Driver: "blk", DriverOptions: []string{"o"}, Source: "s", Fstype: "ext4", Options: []string{"ro"}, MountPoint: "/m", Shared: true,
			FSGroup: &storage.FSGroup{GroupID: 7, OnRootMismatch: true}},
		{Driver: "local", FSGroup: &storage.FSGroup{GroupID: 8}},
		nil,
	}
	if got := StoragesFromProto(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// An interface and a route survive the trip into the domain and back.
func TestNetworkRoundTrip(t *testing.T) {
	iface := &typespb.Interface{Device: "d", Name: "eth0", Mtu: 1400, HwAddr: "02:00:00:00:00:01", DevicePath: "02/03", Type: "veth", RawFlags: 0x80,
		IPAddresses: []*typespb.IPAddress{{Family: typespb.IPFamily_v6, Address: "fd00::2", Mask: "64"}}}
	if got := InterfaceToProto(InterfaceFromProto(iface)); got.String() != iface.String() {
		t.Fatalf("interface: %v, want %v", got, iface)
	}
	route := &typespb.Route{Dest: "10.0.0.0/8", Gateway: "10.0.0.1", Device: "eth0", Source: "10.0.0.2", Scope: 253, Family: typespb.IPFamily_v4, Flags: 4, Mtu: 1300}
	if got := RoutesToProto([]*network.Route{RoutesFromProto([]*typespb.Route{route})[0]}); len(got) != 1 || got[0].String() != route.String() {
		t.Fatalf("route: %v, want %v", got, route)
	}
	if n := NeighborsFromProto([]*typespb.ARPNeighbor{{Device: "eth0"}, nil}); n[0].ToIPAddress != nil || n[1] != nil {
		t.Fatalf("neighbours: %+v", n)
	}
}
