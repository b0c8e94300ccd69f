package convert

import (
	"github.com/cocoon-tee/cocoon/agent/internal/network"
	"github.com/cocoon-tee/cocoon/protocols/typespb"
)

// InterfaceFromProto converts UpdateInterface's interface; nil stays nil.
func InterfaceFromProto(i *typespb.Interface) *network.Interface {
	if i == nil {
		return nil
	}
	return &network.Interface{
		Device: i.Device, Name: i.Name, IPAddresses: addressesFromProto(i.IPAddresses), MTU: i.Mtu,
		HwAddr: i.HwAddr, DevicePath: i.DevicePath, Type: i.Type, RawFlags: i.RawFlags,
	}
}

// InterfaceToProto is the answer for one interface.
func InterfaceToProto(i *network.Interface) *typespb.Interface {
	if i == nil {
		return nil
	}
	out := &typespb.Interface{
		Device: i.Device, Name: i.Name, Mtu: i.MTU, HwAddr: i.HwAddr, DevicePath: i.DevicePath, Type: i.Type, RawFlags: i.RawFlags,
	}
	for _, a := range i.IPAddresses {
		out.IPAddresses = append(out.IPAddresses, addressToProto(a))
	}
	return out
}

// InterfacesToProto is ListInterfaces' answer.
func InterfacesToProto(in []*network.Interface) []*typespb.Interface {
	out := make([]*typespb.Interface, 0, len(in))
	for _, i := range in {
		out = append(out, InterfaceToProto(i))
	}
	return out
}

// RoutesFromProto converts UpdateRoutes' routes; a null entry stays nil.
func RoutesFromProto(in []*typespb.Route) []*network.Route {
	if in == nil {
		return nil
	}
	out := make([]*network.Route, len(in))
	for i, r := range in {
		if r != nil {
			out[i] = &network.Route{
				Dest: r.Dest, Gateway: r.Gateway, Device: r.Device, Source: r.Source, Scope: r.Scope,
				Family: network.Family(r.Family), Flags: r.Flags, MTU: r.Mtu,
			}
		}
	}
	return out
}

// RoutesToProto is the answer for a route table.
func RoutesToProto(in []*network.Route) []*typespb.Route {
	out := make([]*typespb.Route, 0, len(in))
	for _, r := range in {
		out = append(out, &typespb.Route{
			Dest: r.Dest, Gateway: r.Gateway, Device: r.Device, Source: r.Source, Scope: r.Scope,
			Family: typespb.IPFamily(r.Family), Flags: r.Flags, Mtu: r.MTU,
		})
	}
	return out
}

// NeighborsFromProto converts AddARPNeighbors' entries; a null entry stays nil.
func NeighborsFromProto(in []*typespb.ARPNeighbor) []*network.ARPNeighbor {
	if in == nil {
		return nil
	}
	out := make([]*network.ARPNeighbor, len(in))
	for i, n := range in {
		if n != nil {
			out[i] = &network.ARPNeighbor{
				ToIPAddress: addressFromProto(n.ToIPAddress), Device: n.Device, Lladdr: n.Lladdr, State: n.State, Flags: n.Flags,
			}
		}
	}
	return out
}

func addressesFromProto(in []*typespb.IPAddress) []*network.IPAddress {
	if in == nil {
		return nil
	}
	out := make([]*network.IPAddress, len(in))
	for i, a := range in {
		out[i] = addressFromProto(a)
	}
	return out
}

func addressFromProto(a *typespb.IPAddress) *network.IPAddress {
	if a == nil {
		return nil
	}
	return &network.IPAddress{Family: network.Family(a.Family), Address: a.Address, Mask: a.Mask}
}

func addressToProto(a *network.IPAddress) *typespb.IPAddress {
	if a == nil {
		return nil
	}
	return &typespb.IPAddress{Family: typespb.IPFamily(a.Family), Address: a.Address, Mask: a.Mask}
}
