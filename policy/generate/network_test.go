package generate

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/protocols/typespb"
)

// TestNetworkRequestsRefused: the interface, routes and ARP entries the
// runtime sends are allowed; what would take over the guest's loopback,
// give an interface a zero hardware address or flags beyond IFF_NOARP,
// route loopback addresses, or add ARP entries on lo, in 127/8, with a
// mask, or of other states or flags, is refused, naming the field (after
// genpolicy's rules.rego UpdateInterfaceRequest, UpdateRoutesRequest and
// AddARPNeighborsRequest with its settings' request_defaults, 4.1.0).
func TestNetworkRequestsRefused(t *testing.T) {
	p := loadFake(t, onePod)
	// What the Go runtime sends for a pod's veth (the shapes of genpolicy's
	// updateinterface, updateroutes and addarpneighbors test cases).
	iface := func() *agentpb.UpdateInterfaceRequest {
		return &agentpb.UpdateInterfaceRequest{Interface: &typespb.Interface{
			Device: "eth0", Name: "eth0", Mtu: 1500, HwAddr: "66:74:9f:6a:96:01",
			IPAddresses: []*typespb.IPAddress{{Address: "10.244.0.14", Mask: "24"}, {Family: typespb.IPFamily_v6, Address: "fe80::6474:9fff:fe6a:9601", Mask: "64"}},
		}}
	}
	routes := func() *agentpb.UpdateRoutesRequest {
		return &agentpb.UpdateRoutesRequest{Routes: &agentpb.Routes{Routes: []*typespb.Route{
			{Dest: "10.244.0.0/24", Device: "eth0", Source: "10.244.0.14", Scope: 253},
			{Gateway: "10.244.0.1", Device: "eth0"},
			{Dest: "fe80::/64", Device: "eth0", Family: typespb.IPFamily_v6},
		}}}
	}
	arp := func() *agentpb.AddARPNeighborsRequest {
		return &agentpb.AddARPNeighborsRequest{Neighbors: &agentpb.ARPNeighbors{ARPNeighbors: []*typespb.ARPNeighbor{
			{ToIPAddress: &typespb.IPAddress{Address: "10.0.0.1"}, Device: "eth0", Lladdr: "00:00:5e:00:53:01", State: 128},
		}}}
	}
	type req interface{ proto.Message }
	cases := []struct {
		name, field string
		build       func() req
	}{
		{"interface", "", func() req { return iface() }},
		{"interface with IFF_NOARP", "", func() req { r := iface(); r.Interface.RawFlags = unix.IFF_NOARP; return r }},
		{"interface lo", "interface.name", func() req { r := iface(); r.Interface.Name = "lo"; return r }},
		{"zero hardware address", "interface.hwAddr", func() req { r := iface(); r.Interface.HwAddr = "00:00:00:00:00:00"; return r }},
		{"IFF_PROMISC", "interface.raw_flags", func() req { r := iface(); r.Interface.RawFlags = unix.IFF_PROMISC; return r }},
		{"no interface", "interface", func() req { r := iface(); r.Interface = nil; return r }},
		{"routes", "", func() req { return routes() }},
		{"route on lo", "routes.Routes[1].device", func() req { r := routes(); r.Routes.Routes[1].Device = "lo"; return r }},
		{"loopback source", "routes.Routes[0].source", func() req { r := routes(); r.Routes.Routes[0].Source = "127.0.0.1"; return r }},
		{"IPv6 loopback source", "routes.Routes[0].source", func() req { r := routes(); r.Routes.Routes[0].Source = "::1"; return r }},
		{"IPv6 loopback source, long", "routes.Routes[0].source", func() req { r := routes(); r.Routes.Routes[0].Source = "00::001"; return r }},
		{"loopback destination", "routes.Routes[0].dest", func() req { r := routes(); r.Routes.Routes[0].Dest = "127.0.0.0/8"; return r }},
		{"IPv6 loopback destination", "routes.Routes[2].dest", func() req { r := routes(); r.Routes.Routes[2].Dest = "::1/128"; return r }},
		{"ARP", "", func() req { return arp() }},
		{"ARP reachable, router, proxy", "", func() req {
			r := arp()
			r.Neighbors.ARPNeighbors[0].State, r.Neighbors.ARPNeighbors[0].Flags = unix.NUD_REACHABLE, unix.NTF_ROUTER|unix.NTF_PROXY
			return r
		}},
		{"ARP on lo", "neighbors.ARPNeighbors[0].device", func() req { r := arp(); r.Neighbors.ARPNeighbors[0].Device = "lo"; return r }},
		{"ARP in 127/8", "neighbors.ARPNeighbors[0].toIPAddress", func() req {
			r := arp()
			r.Neighbors.ARPNeighbors[0].ToIPAddress.Address = "127.1.2.3"
			return r
		}},
		{"ARP with a mask", "neighbors.ARPNeighbors[0].toIPAddress", func() req {
			r := arp()
			r.Neighbors.ARPNeighbors[0].ToIPAddress.Mask = "8"
			return r
		}},
		{"ARP incomplete", "neighbors.ARPNeighbors[0].state", func() req { r := arp(); r.Neighbors.ARPNeighbors[0].State = 0; return r }},
		{"ARP other flags", "neighbors.ARPNeighbors[0].flags", func() req { r := arp(); r.Neighbors.ARPNeighbors[0].Flags = 5; return r }},
	}
	for _, c := range cases {
		r := c.build()
		kind := string(r.ProtoReflect().Descriptor().Name())
		d := decideDoc(t, p, kind, input.Encode(r))
		switch {
		case c.field == "" && !d.Allowed:
			t.Errorf("%s: denied: %s", c.name, d.Prints)
		case c.field != "" && (d.Allowed || !strings.HasPrefix(d.Prints, c.field+":")):
			t.Errorf("%s: allowed %v, denial %q does not lead with %q", c.name, d.Allowed, d.Prints, c.field)
		}
	}
}
