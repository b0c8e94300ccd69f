package convert

import (
	"github.com/cocoon-tee/cocoon/agent/internal/copyfile"
	"github.com/cocoon-tee/cocoon/agent/internal/system"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// DetailsToProto is GetGuestDetails' answer.
func DetailsToProto(d *system.Details) *agentpb.GuestDetailsResponse {
	a := d.Agent
	return &agentpb.GuestDetailsResponse{
		MemBlockSizeBytes:      d.MemBlockSizeBytes,
		SupportMemHotplugProbe: d.SupportMemHotplugProbe,
		AgentDetails: &agentpb.AgentDetails{
			Version: a.Version, InitDaemon: a.InitDaemon, SupportsSeccomp: a.SupportsSeccomp,
			ExtraFeatures: a.ExtraFeatures, DeviceHandlers: a.DeviceHandlers, StorageHandlers: a.StorageHandlers,
		},
	}
}

// OnlineFromProto converts OnlineCPUMem's request; nil stays nil.
func OnlineFromProto(r *agentpb.OnlineCPUMemRequest) *system.OnlineRequest {
	if r == nil {
		return nil
	}
	return &system.OnlineRequest{NbCPUs: r.NbCpus, CPUOnly: r.CpuOnly}
}

// VolumeStatsToProto is GetVolumeStats' answer: bytes, then inodes, and a
// healthy condition (the agent has no way to tell a sick volume).
func VolumeStatsToProto(v *system.VolumeStats) *agentpb.VolumeStatsResponse {
	return &agentpb.VolumeStatsResponse{
		Usage: []*agentpb.VolumeUsage{
			{Total: v.Bytes.Total, Available: v.Bytes.Available, Used: v.Bytes.Used, Unit: agentpb.VolumeUsage_BYTES},
			{Total: v.Inodes.Total, Available: v.Inodes.Available, Used: v.Inodes.Used, Unit: agentpb.VolumeUsage_INODES},
		},
		VolumeCondition: &agentpb.VolumeCondition{Abnormal: false, Message: "OK"},
	}
}

// CopyFileFromProto converts a CopyFile request; a nil one is all zero, as
// its getters read it.
func CopyFileFromProto(r *agentpb.CopyFileRequest) *copyfile.Request {
	return &copyfile.Request{
		Path: r.GetPath(), FileSize: r.GetFileSize(), FileMode: r.GetFileMode(), DirMode: r.GetDirMode(),
		UID: r.GetUid(), GID: r.GetGid(), Offset: r.GetOffset(), Data: r.GetData(),
	}
}
