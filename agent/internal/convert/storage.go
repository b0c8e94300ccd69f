package convert

import (
	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/agent/internal/system"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/protocols/typespb"
)

// StoragesFromProto converts a request's storages. A null entry stays nil,
// for the storage manager to refuse with its own message.
func StoragesFromProto(in []*agentpb.Storage) []*storage.Storage {
	if in == nil {
		return nil
	}
	out := make([]*storage.Storage, len(in))
	for i, s := range in {
		if s == nil {
			continue
		}
		out[i] = &storage.Storage{
			Driver: s.Driver, DriverOptions: s.DriverOptions, Source: s.Source, Fstype: s.Fstype,
			Options: s.Options, MountPoint: s.MountPoint, Shared: s.Shared,
		}
		if g := s.FsGroup; g != nil {
			out[i].FSGroup = &storage.FSGroup{GroupID: g.GroupId, OnRootMismatch: g.GroupChangePolicy == typespb.FSGroupChangePolicy_OnRootMismatch}
		}
	}
	return out
}

// DevicesFromProto converts CreateContainer's devices; a null entry stays
// nil, for the guest to refuse.
func DevicesFromProto(in []*agentpb.Device) []*system.Device {
	if in == nil {
		return nil
	}
	out := make([]*system.Device, len(in))
	for i, d := range in {
		if d != nil {
			out[i] = &system.Device{ID: d.Id, Type: d.Type, VMPath: d.VmPath, ContainerPath: d.ContainerPath, Options: d.Options}
		}
	}
	return out
}

// ModulesFromProto converts CreateSandbox's kernel modules; a null entry
// stays nil, for the sandbox to refuse.
func ModulesFromProto(in []*agentpb.KernelModule) []*sandbox.Module {
	if in == nil {
		return nil
	}
	out := make([]*sandbox.Module, len(in))
	for i, m := range in {
		if m != nil {
			out[i] = &sandbox.Module{Name: m.Name, Parameters: m.Parameters}
		}
	}
	return out
}
