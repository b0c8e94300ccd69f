package rpc

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/internal/convert"
	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/internal/errs"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// CreateContainer creates a container whose init waits for StartContainer.
func (s *Service) CreateContainer(ctx context.Context, r *agentpb.CreateContainerRequest) (*emptypb.Empty, error) {
	sb, err := s.pod()
	if err != nil {
		return nil, err
	}
	spec, err := convert.SpecFromProto(r.OCI)
	if err != nil {
		return nil, err
	}
	_, err = sb.CreateContainer(ctx, sandbox.ContainerRequest{
		ID: r.ContainerId, ExecID: r.ExecId, StringUser: convert.StringUserFromProto(r.StringUser),
		Storages: convert.StoragesFromProto(r.Storages), Spec: spec, Devices: convert.DevicesFromProto(r.Devices),
		SandboxPidns: r.SandboxPidns, Guest: s.system.Guest,
	})
	return okEmpty(err)
}

// StartContainer lets the container's init exec its workload.
func (s *Service) StartContainer(ctx context.Context, r *agentpb.StartContainerRequest) (*emptypb.Empty, error) {
	c, err := s.container(r.ContainerId)
	if err != nil {
		return nil, err
	}
	return okEmpty(c.Start(ctx))
}

// RemoveContainer kills and removes a container. Timeout 0 waits as long as
// it takes; otherwise the removal fails after timeout seconds.
func (s *Service) RemoveContainer(ctx context.Context, r *agentpb.RemoveContainerRequest) (*emptypb.Empty, error) {
	sb, err := s.pod()
	if err != nil {
		return nil, err
	}
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(r.Timeout)*time.Second)
		defer cancel()
	}
	return okEmpty(sb.Remove(ctx, r.ContainerId))
}

// ExecProcess starts another process in a container.
func (s *Service) ExecProcess(ctx context.Context, r *agentpb.ExecProcessRequest) (*emptypb.Empty, error) {
	sb, err := s.pod()
	if err != nil {
		return nil, err
	}
	proc, err := convert.ProcessFromProto(r.Process)
	if err != nil {
		return nil, err
	}
	_, err = sb.Exec(ctx, sandbox.ExecRequest{
		ContainerID: r.ContainerId, ExecID: r.ExecId, StringUser: convert.StringUserFromProto(r.StringUser),
		Process: proc, Guest: s.system.Guest,
	})
	return okEmpty(err)
}

// SignalProcess signals one process, or every process of the container
// (empty exec id with SIGKILL).
func (s *Service) SignalProcess(ctx context.Context, r *agentpb.SignalProcessRequest) (*emptypb.Empty, error) {
	c, err := s.container(r.ContainerId)
	if err != nil {
		return nil, err
	}
	return okEmpty(c.Signal(ctx, r.ExecId, syscall.Signal(r.Signal)))
}

// WaitProcess blocks until the process exits and returns its status.
func (s *Service) WaitProcess(ctx context.Context, r *agentpb.WaitProcessRequest) (*agentpb.WaitProcessResponse, error) {
	c, err := s.container(r.ContainerId)
	if err != nil {
		return nil, err
	}
	status, err := c.Wait(ctx, r.ExecId)
	if err != nil {
		return nil, err
	}
	return &agentpb.WaitProcessResponse{Status: int32(status)}, nil
}

// UpdateContainer changes a container's cgroup limits.
func (s *Service) UpdateContainer(ctx context.Context, r *agentpb.UpdateContainerRequest) (*emptypb.Empty, error) {
	c, err := s.container(r.ContainerId)
	if err != nil {
		return nil, err
	}
	res, err := convert.ResourcesFromProto(r.Resources)
	if err != nil {
		return nil, err
	}
	return okEmpty(c.Update(ctx, res))
}

// StatsContainer reports cgroup and network statistics.
func (s *Service) StatsContainer(ctx context.Context, r *agentpb.StatsContainerRequest) (*agentpb.StatsContainerResponse, error) {
	c, err := s.container(r.ContainerId)
	if err != nil {
		return nil, err
	}
	st, err := c.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return convert.StatsToProto(st), nil
}

// PauseContainer freezes a container.
func (s *Service) PauseContainer(ctx context.Context, r *agentpb.PauseContainerRequest) (*emptypb.Empty, error) {
	c, err := s.container(r.ContainerId)
	if err != nil {
		return nil, err
	}
	return okEmpty(c.Pause())
}

// ResumeContainer thaws a container.
func (s *Service) ResumeContainer(ctx context.Context, r *agentpb.ResumeContainerRequest) (*emptypb.Empty, error) {
	c, err := s.container(r.ContainerId)
	if err != nil {
		return nil, err
	}
	return okEmpty(c.Resume())
}

// GetDiagnosticData answers "termination_log": the file mounted at the
// container's terminationMessagePath, capped at 4 KiB as Kubernetes caps it.
func (s *Service) GetDiagnosticData(ctx context.Context, r *agentpb.GetDiagnosticDataRequest) (*agentpb.GetDiagnosticDataResponse, error) {
	if r.LogType != "termination_log" {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "unknown diagnostic data type %q", r.LogType)
	}
	sb, err := s.pod()
	if err != nil {
		return nil, err
	}
	data, err := sb.TerminationLog(r.ContainerId)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return &agentpb.GetDiagnosticDataResponse{Data: data}, nil
}

func (s *Service) container(id string) (*container.Container, error) {
	sb, err := s.pod()
	if err != nil {
		return nil, err
	}
	return sb.Container(id)
}

func (s *Service) process(cid, execID string) (*container.Container, *container.Process, error) {
	c, err := s.container(cid)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.Process(execID)
	if err != nil {
		return nil, nil, err
	}
	return c, p, nil
}
