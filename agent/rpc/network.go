package rpc

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/agent/internal/convert"
	"github.com/cocoon-tee/cocoon/agent/internal/network"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/protocols/typespb"
)

func (s *Service) net() (*network.Manager, error) {
	if s.system.Network == nil {
		return nil, errdefs.ErrNotImplemented.WithMessage("guest networking is not configured in this agent")
	}
	return s.system.Network, nil
}

// UpdateInterface configures one NIC and returns it as it now is.
func (s *Service) UpdateInterface(ctx context.Context, r *agentpb.UpdateInterfaceRequest) (*typespb.Interface, error) {
	n, err := s.net()
	if err != nil {
		return nil, err
	}
	iface := r.GetInterface()
	if p := iface.GetDevicePath(); p != "" {
		if err := s.reconcilePCINetdev(ctx, n, p, iface.GetHwAddr()); err != nil {
			return nil, err
		}
	}
	got, err := n.UpdateInterface(ctx, convert.InterfaceFromProto(iface))
	if err != nil {
		return nil, err
	}
	return convert.InterfaceToProto(got), nil
}

// reconcilePCINetdev waits for the NIC at the PCI path and, when the
// request names a MAC, gives it that MAC so the by-MAC lookup finds it. As
// in Kata (src/agent/src/rpc.rs update_interface) a failure to set the MAC
// only warns: the lookup then reports the missing link.
func (s *Service) reconcilePCINetdev(ctx context.Context, n *network.Manager, pciPath, hw string) error {
	g, err := s.guest()
	if err != nil {
		return err
	}
	name, err := g.PCINetdev(ctx, pciPath)
	if err != nil {
		return fmt.Errorf("interface not available: %w", err)
	}
	if hw == "" {
		return nil
	}
	if err := n.SetMAC(name, hw); err != nil {
		s.log.WarnContext(ctx, "setting the MAC of a PCI network device failed; looking the interface up by MAC", "device_path", pciPath, "netdev", name, "hw_addr", hw, "error", err.Error())
	}
	return nil
}

// UpdateRoutes replaces the route table and returns it.
func (s *Service) UpdateRoutes(ctx context.Context, r *agentpb.UpdateRoutesRequest) (*agentpb.Routes, error) {
	n, err := s.net()
	if err != nil {
		return nil, err
	}
	if r.GetRoutes() == nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("empty update routes request")
	}
	rs, err := n.UpdateRoutes(ctx, convert.RoutesFromProto(r.GetRoutes().GetRoutes()))
	if err != nil {
		return nil, err
	}
	return &agentpb.Routes{Routes: convert.RoutesToProto(rs)}, nil
}

// ListInterfaces reports every link.
func (s *Service) ListInterfaces(ctx context.Context, _ *agentpb.ListInterfacesRequest) (*agentpb.Interfaces, error) {
	n, err := s.net()
	if err != nil {
		return nil, err
	}
	is, err := n.ListInterfaces(ctx)
	if err != nil {
		return nil, err
	}
	return &agentpb.Interfaces{Interfaces: convert.InterfacesToProto(is)}, nil
}

// ListRoutes reports the main route table.
func (s *Service) ListRoutes(ctx context.Context, _ *agentpb.ListRoutesRequest) (*agentpb.Routes, error) {
	n, err := s.net()
	if err != nil {
		return nil, err
	}
	rs, err := n.ListRoutes(ctx)
	if err != nil {
		return nil, err
	}
	return &agentpb.Routes{Routes: convert.RoutesToProto(rs)}, nil
}

// AddARPNeighbors installs permanent neighbour entries.
func (s *Service) AddARPNeighbors(ctx context.Context, r *agentpb.AddARPNeighborsRequest) (*emptypb.Empty, error) {
	n, err := s.net()
	if err != nil {
		return nil, err
	}
	if r.GetNeighbors() == nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("empty add arp neighbours request")
	}
	if err := n.AddARPNeighbors(ctx, convert.NeighborsFromProto(r.GetNeighbors().GetARPNeighbors())); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// GetIPTables returns iptables-save (or ip6tables-save) output.
func (s *Service) GetIPTables(ctx context.Context, r *agentpb.GetIPTablesRequest) (*agentpb.GetIPTablesResponse, error) {
	n, err := s.net()
	if err != nil {
		return nil, err
	}
	out, err := n.IPTables().Get(ctx, r.GetIsIpv6())
	if err != nil {
		return nil, err
	}
	return &agentpb.GetIPTablesResponse{Data: out}, nil
}

// SetIPTables loads rules with iptables-restore (or ip6tables-restore).
func (s *Service) SetIPTables(ctx context.Context, r *agentpb.SetIPTablesRequest) (*agentpb.SetIPTablesResponse, error) {
	n, err := s.net()
	if err != nil {
		return nil, err
	}
	out, err := n.IPTables().Set(ctx, r.GetIsIpv6(), r.GetData())
	if err != nil {
		return nil, err
	}
	return &agentpb.SetIPTablesResponse{Data: out}, nil
}
