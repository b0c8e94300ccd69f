package rpc

import (
	"context"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/agent/internal/convert"
	"github.com/cocoon-tee/cocoon/agent/internal/copyfile"
	"github.com/cocoon-tee/cocoon/agent/internal/metrics"
	"github.com/cocoon-tee/cocoon/agent/internal/network"
	"github.com/cocoon-tee/cocoon/agent/internal/observe"
	"github.com/cocoon-tee/cocoon/agent/internal/system"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// System are the guest-wide domain objects: network, guest management,
// CopyFile and metrics. A nil member answers its rpcs Unimplemented.
type System struct {
	Network *network.Manager
	Guest   *system.Guest
	Files   *copyfile.Copier
	Metrics *metrics.Metrics
	// MetricsSet is what GetMetrics returns, from the owner's cocoon.toml:
	// full (also ""), aggregate, or none. The policy gate refuses "none"
	// first; the handler refuses it too, so no path returns more.
	MetricsSet observe.Metrics
}

func (s *Service) guest() (*system.Guest, error) {
	if s.system.Guest == nil {
		return nil, errdefs.ErrNotImplemented.WithMessage("guest management is not configured in this agent")
	}
	return s.system.Guest, nil
}

// GetGuestDetails reports memory hot-plug facts and the agent's abilities.
func (s *Service) GetGuestDetails(ctx context.Context, r *agentpb.GuestDetailsRequest) (*agentpb.GuestDetailsResponse, error) {
	g, err := s.guest()
	if err != nil {
		return nil, err
	}
	d, err := g.Details(ctx, system.DetailsRequest{MemBlockSize: r.GetMemBlockSize(), MemHotplugProbe: r.GetMemHotplugProbe()})
	if err != nil {
		return nil, err
	}
	return convert.DetailsToProto(d), nil
}

// OnlineCPUMem onlines hot-plugged CPUs and memory.
func (s *Service) OnlineCPUMem(ctx context.Context, r *agentpb.OnlineCPUMemRequest) (*emptypb.Empty, error) {
	g, err := s.guest()
	if err != nil {
		return nil, err
	}
	return okEmpty(g.OnlineCPUMem(ctx, convert.OnlineFromProto(r)))
}

// MemHotplugByProbe announces hot-added memory.
func (s *Service) MemHotplugByProbe(ctx context.Context, r *agentpb.MemHotplugByProbeRequest) (*emptypb.Empty, error) {
	g, err := s.guest()
	if err != nil {
		return nil, err
	}
	return okEmpty(g.MemHotplugByProbe(ctx, r.GetMemHotplugProbeAddr()))
}

// SetGuestDateTime sets the guest clock.
func (s *Service) SetGuestDateTime(ctx context.Context, r *agentpb.SetGuestDateTimeRequest) (*emptypb.Empty, error) {
	g, err := s.guest()
	if err != nil {
		return nil, err
	}
	return okEmpty(g.SetDateTime(ctx, r.GetSec(), r.GetUsec()))
}

// ReseedRandomDev feeds the entropy pool.
func (s *Service) ReseedRandomDev(ctx context.Context, r *agentpb.ReseedRandomDevRequest) (*emptypb.Empty, error) {
	g, err := s.guest()
	if err != nil {
		return nil, err
	}
	return okEmpty(g.Reseed(ctx, r.GetData()))
}

// AddSwap enables swap on a hot-plugged disk.
func (s *Service) AddSwap(ctx context.Context, r *agentpb.AddSwapRequest) (*emptypb.Empty, error) {
	g, err := s.guest()
	if err != nil {
		return nil, err
	}
	return okEmpty(g.AddSwap(ctx, r.GetPCIPath()))
}

// AddSwapPath enables swap on a file.
func (s *Service) AddSwapPath(ctx context.Context, r *agentpb.AddSwapPathRequest) (*emptypb.Empty, error) {
	g, err := s.guest()
	if err != nil {
		return nil, err
	}
	return okEmpty(g.AddSwapPath(ctx, r.GetPath()))
}

// GetVolumeStats reports a volume's usage.
func (s *Service) GetVolumeStats(ctx context.Context, r *agentpb.VolumeStatsRequest) (*agentpb.VolumeStatsResponse, error) {
	g, err := s.guest()
	if err != nil {
		return nil, err
	}
	v, err := g.VolumeStats(ctx, r.GetVolumeGuestPath())
	if err != nil {
		return nil, err
	}
	return convert.VolumeStatsToProto(v), nil
}

// ResizeVolume grows a volume's file system to its device.
func (s *Service) ResizeVolume(ctx context.Context, r *agentpb.ResizeVolumeRequest) (*emptypb.Empty, error) {
	g, err := s.guest()
	if err != nil {
		return nil, err
	}
	return okEmpty(g.ResizeVolume(ctx, r.GetVolumeGuestPath(), r.GetSize()))
}

// UpdateEphemeralMounts remounts tmpfs storages with new options.
func (s *Service) UpdateEphemeralMounts(ctx context.Context, r *agentpb.UpdateEphemeralMountsRequest) (*emptypb.Empty, error) {
	g, err := s.guest()
	if err != nil {
		return nil, err
	}
	return okEmpty(g.UpdateEphemeralMounts(ctx, convert.StoragesFromProto(r.GetStorages())))
}

// RemoveStaleVirtiofsShareMounts detaches virtio-fs shares whose host side is gone.
func (s *Service) RemoveStaleVirtiofsShareMounts(ctx context.Context, _ *agentpb.RemoveStaleVirtiofsShareMountsRequest) (*emptypb.Empty, error) {
	g, err := s.guest()
	if err != nil {
		return nil, err
	}
	return okEmpty(g.RemoveStaleVirtiofsShares(ctx))
}

// MemAgentMemcgSet answers as Kata does with its memory agent disabled
// (INTERNAL "mem-agent is disabled").
func (s *Service) MemAgentMemcgSet(context.Context, *agentpb.MemAgentMemcgConfig) (*emptypb.Empty, error) {
	return nil, system.MemAgentDisabled()
}

// MemAgentCompactSet answers as Kata does with its memory agent disabled.
func (s *Service) MemAgentCompactSet(context.Context, *agentpb.MemAgentCompactConfig) (*emptypb.Empty, error) {
	return nil, system.MemAgentDisabled()
}

// GetMetrics returns Prometheus text.
func (s *Service) GetMetrics(ctx context.Context, _ *agentpb.GetMetricsRequest) (*agentpb.Metrics, error) {
	if s.system.Metrics == nil {
		return nil, errdefs.ErrNotImplemented.WithMessage("metrics are not configured in this agent")
	}
	gather := s.system.Metrics.Gather
	switch s.system.MetricsSet {
	case observe.MetricsNone:
		return nil, errdefs.ErrPermissionDenied.WithMessage("metrics are denied by the owner's cocoon.toml")
	case observe.MetricsAggregate:
		gather = s.system.Metrics.GatherAggregate
	}
	text, err := gather(ctx)
	if err != nil {
		return nil, err
	}
	return &agentpb.Metrics{Metrics: text}, nil
}
