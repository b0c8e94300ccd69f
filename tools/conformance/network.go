package conformance

import (
	"context"
	"fmt"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/protocols/typespb"
)

// The runtime configures the guest's network from the pod's network
// namespace before CreateSandbox. The suite has no CNI result of its own, so
// it sends the guest's own configuration back in the runtime's requests
// (ListInterfaces / ListRoutes), which leaves a real guest's network as it
// was, plus one permanent neighbour on an address that is never routed
// (TEST-NET-1), so AddARPNeighbors carries an entry of the runtime's shape.

// probeNeighbour is the neighbour AddARPNeighbors installs: TEST-NET-1 and a
// locally administered MAC, harmless on any guest.
const (
	probeNeighbourIP  = "192.0.2.77"
	probeNeighbourMAC = "02:00:5e:10:00:77"
	nudPermanent      = 0x80 // NUD_PERMANENT, the only state the runtime copies
)

// podNetwork is what the runtime would send for the pod's network.
type podNetwork struct {
	ifaces []*typespb.Interface
	routes []*typespb.Route
	neighs []*typespb.ARPNeighbor
}

// guestNetwork reads the guest's non-loopback interfaces and their routes.
func (h *Harness) guestNetwork(ctx context.Context) (podNetwork, error) {
	var n podNetwork
	li, err := h.Agent.ListInterfaces(ctx, &agentpb.ListInterfacesRequest{})
	if err != nil {
		return n, fmt.Errorf("ListInterfaces: %w", err)
	}
	names := map[string]bool{}
	for _, i := range li.GetInterfaces() {
		if i.GetName() == "lo" || i.GetHwAddr() == "" {
			continue
		}
		// The runtime names the device by the interface name and leaves
		// the PCI path, type and flags empty for a veth/tap endpoint
		// (virtcontainers/network_linux.go generateVCNetworkStructures;
		// runtime-rs resource/src/network/network_with_netns.rs).
		n.ifaces = append(n.ifaces, &typespb.Interface{
			Device: i.GetName(), Name: i.GetName(), IPAddresses: i.GetIPAddresses(),
			Mtu: i.GetMtu(), HwAddr: i.GetHwAddr(),
		})
		names[i.GetName()] = true
	}
	lr, err := h.Agent.ListRoutes(ctx, &agentpb.ListRoutesRequest{})
	if err != nil {
		return n, fmt.Errorf("ListRoutes: %w", err)
	}
	for _, r := range lr.GetRoutes() {
		if names[r.GetDevice()] {
			n.routes = append(n.routes, r)
		}
	}
	if len(n.ifaces) > 0 {
		n.neighs = []*typespb.ARPNeighbor{{
			ToIPAddress: &typespb.IPAddress{Family: typespb.IPFamily_v4, Address: probeNeighbourIP},
			Device:      n.ifaces[0].GetName(), Lladdr: probeNeighbourMAC, State: nudPermanent,
		}}
	}
	return n, nil
}

// setupNetwork sends the pod's network in the runtime's order. The Go
// runtime sends interfaces, routes, then neighbours
// (virtcontainers/kata_agent.go setupNetworks, ~l.1544-1551); runtime-rs
// sends interfaces, neighbours, then routes
// (runtime-rs/crates/resource/src/manager_inner.rs apply_network_to_agent,
// ~l.376-384). Both skip the calls when the pod has no interface.
func (h *Harness) setupNetwork(ctx context.Context) error {
	n, err := h.guestNetwork(ctx)
	if err != nil || len(n.ifaces) == 0 {
		return err
	}
	for _, i := range n.ifaces {
		if _, err := h.Agent.UpdateInterface(ctx, &agentpb.UpdateInterfaceRequest{Interface: i}); err != nil {
			return fmt.Errorf("UpdateInterface %s: %w", i.GetName(), err)
		}
	}
	routes := func() error {
		if _, err := h.Agent.UpdateRoutes(ctx, &agentpb.UpdateRoutesRequest{Routes: &agentpb.Routes{Routes: n.routes}}); err != nil {
			return fmt.Errorf("UpdateRoutes: %w", err)
		}
		return nil
	}
	neighs := func() error {
		if _, err := h.Agent.AddARPNeighbors(ctx, &agentpb.AddARPNeighborsRequest{Neighbors: &agentpb.ARPNeighbors{ARPNeighbors: n.neighs}}); err != nil {
			return fmt.Errorf("AddARPNeighbors: %w", err)
		}
		return nil
	}
	order := []func() error{routes, neighs}
	if h.cfg.Runtime == RuntimeRs {
		order = []func() error{neighs, routes}
	}
	for _, step := range order {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}
