package rpc

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/protocols/typespb"
)

// unimplemented answers every AgentService rpc with Unimplemented. Service
// embeds it, so an rpc stays Unimplemented until Service defines it.
type unimplemented struct{}

func (unimplemented) CreateContainer(context.Context, *agentpb.CreateContainerRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("CreateContainer")
}

func (unimplemented) StartContainer(context.Context, *agentpb.StartContainerRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("StartContainer")
}

func (unimplemented) RemoveContainer(context.Context, *agentpb.RemoveContainerRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("RemoveContainer")
}

func (unimplemented) ExecProcess(context.Context, *agentpb.ExecProcessRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("ExecProcess")
}

func (unimplemented) SignalProcess(context.Context, *agentpb.SignalProcessRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("SignalProcess")
}

func (unimplemented) WaitProcess(context.Context, *agentpb.WaitProcessRequest) (*agentpb.WaitProcessResponse, error) {
	return nil, notImplemented("WaitProcess")
}

func (unimplemented) UpdateContainer(context.Context, *agentpb.UpdateContainerRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("UpdateContainer")
}

func (unimplemented) UpdateEphemeralMounts(context.Context, *agentpb.UpdateEphemeralMountsRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("UpdateEphemeralMounts")
}

func (unimplemented) StatsContainer(context.Context, *agentpb.StatsContainerRequest) (*agentpb.StatsContainerResponse, error) {
	return nil, notImplemented("StatsContainer")
}

func (unimplemented) PauseContainer(context.Context, *agentpb.PauseContainerRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("PauseContainer")
}

func (unimplemented) ResumeContainer(context.Context, *agentpb.ResumeContainerRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("ResumeContainer")
}

func (unimplemented) RemoveStaleVirtiofsShareMounts(context.Context, *agentpb.RemoveStaleVirtiofsShareMountsRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("RemoveStaleVirtiofsShareMounts")
}

func (unimplemented) GetDiagnosticData(context.Context, *agentpb.GetDiagnosticDataRequest) (*agentpb.GetDiagnosticDataResponse, error) {
	return nil, notImplemented("GetDiagnosticData")
}

func (unimplemented) WriteStdin(context.Context, *agentpb.WriteStreamRequest) (*agentpb.WriteStreamResponse, error) {
	return nil, notImplemented("WriteStdin")
}

func (unimplemented) ReadStdout(context.Context, *agentpb.ReadStreamRequest) (*agentpb.ReadStreamResponse, error) {
	return nil, notImplemented("ReadStdout")
}

func (unimplemented) ReadStderr(context.Context, *agentpb.ReadStreamRequest) (*agentpb.ReadStreamResponse, error) {
	return nil, notImplemented("ReadStderr")
}

func (unimplemented) CloseStdin(context.Context, *agentpb.CloseStdinRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("CloseStdin")
}

func (unimplemented) TtyWinResize(context.Context, *agentpb.TtyWinResizeRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("TtyWinResize")
}

func (unimplemented) UpdateInterface(context.Context, *agentpb.UpdateInterfaceRequest) (*typespb.Interface, error) {
	return nil, notImplemented("UpdateInterface")
}

func (unimplemented) UpdateRoutes(context.Context, *agentpb.UpdateRoutesRequest) (*agentpb.Routes, error) {
	return nil, notImplemented("UpdateRoutes")
}

func (unimplemented) ListInterfaces(context.Context, *agentpb.ListInterfacesRequest) (*agentpb.Interfaces, error) {
	return nil, notImplemented("ListInterfaces")
}

func (unimplemented) ListRoutes(context.Context, *agentpb.ListRoutesRequest) (*agentpb.Routes, error) {
	return nil, notImplemented("ListRoutes")
}

func (unimplemented) AddARPNeighbors(context.Context, *agentpb.AddARPNeighborsRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("AddARPNeighbors")
}

func (unimplemented) GetIPTables(context.Context, *agentpb.GetIPTablesRequest) (*agentpb.GetIPTablesResponse, error) {
	return nil, notImplemented("GetIPTables")
}

func (unimplemented) SetIPTables(context.Context, *agentpb.SetIPTablesRequest) (*agentpb.SetIPTablesResponse, error) {
	return nil, notImplemented("SetIPTables")
}

func (unimplemented) GetMetrics(context.Context, *agentpb.GetMetricsRequest) (*agentpb.Metrics, error) {
	return nil, notImplemented("GetMetrics")
}

func (unimplemented) MemAgentMemcgSet(context.Context, *agentpb.MemAgentMemcgConfig) (*emptypb.Empty, error) {
	return nil, notImplemented("MemAgentMemcgSet")
}

func (unimplemented) MemAgentCompactSet(context.Context, *agentpb.MemAgentCompactConfig) (*emptypb.Empty, error) {
	return nil, notImplemented("MemAgentCompactSet")
}

func (unimplemented) CreateSandbox(context.Context, *agentpb.CreateSandboxRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("CreateSandbox")
}

func (unimplemented) DestroySandbox(context.Context, *agentpb.DestroySandboxRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("DestroySandbox")
}

func (unimplemented) OnlineCPUMem(context.Context, *agentpb.OnlineCPUMemRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("OnlineCPUMem")
}

func (unimplemented) ReseedRandomDev(context.Context, *agentpb.ReseedRandomDevRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("ReseedRandomDev")
}

func (unimplemented) GetGuestDetails(context.Context, *agentpb.GuestDetailsRequest) (*agentpb.GuestDetailsResponse, error) {
	return nil, notImplemented("GetGuestDetails")
}

func (unimplemented) MemHotplugByProbe(context.Context, *agentpb.MemHotplugByProbeRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("MemHotplugByProbe")
}

func (unimplemented) SetGuestDateTime(context.Context, *agentpb.SetGuestDateTimeRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("SetGuestDateTime")
}

func (unimplemented) CopyFile(context.Context, *agentpb.CopyFileRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("CopyFile")
}

func (unimplemented) GetOOMEvent(context.Context, *agentpb.GetOOMEventRequest) (*agentpb.OOMEvent, error) {
	return nil, notImplemented("GetOOMEvent")
}

func (unimplemented) AddSwap(context.Context, *agentpb.AddSwapRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("AddSwap")
}

func (unimplemented) AddSwapPath(context.Context, *agentpb.AddSwapPathRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("AddSwapPath")
}

func (unimplemented) GetVolumeStats(context.Context, *agentpb.VolumeStatsRequest) (*agentpb.VolumeStatsResponse, error) {
	return nil, notImplemented("GetVolumeStats")
}

func (unimplemented) ResizeVolume(context.Context, *agentpb.ResizeVolumeRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("ResizeVolume")
}

func (unimplemented) SetPolicy(context.Context, *agentpb.SetPolicyRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("SetPolicy")
}

func notImplemented(method string) error {
	return status.Errorf(codes.Unimplemented, "%s is not implemented by this agent", method)
}
