package rpc

import (
	"context"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/agent/internal/convert"
	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// CreateSandbox sets up the pod: modules, shared namespaces, storages, DNS.
func (s *Service) CreateSandbox(ctx context.Context, r *agentpb.CreateSandboxRequest) (*emptypb.Empty, error) {
	sb, err := s.pod()
	if err != nil {
		return nil, err
	}
	err = sb.Create(ctx, sandbox.Config{
		ID: r.SandboxId, Hostname: r.Hostname, DNS: r.Dns,
		Storages: convert.StoragesFromProto(r.Storages), Modules: convert.ModulesFromProto(r.KernelModules),
	})
	return okEmpty(err)
}

// DestroySandbox removes every container and the sandbox's resources. The
// after-destroy hook (power-off when the agent is PID 1) runs once this
// handler has returned, so the runtime still gets its answer.
func (s *Service) DestroySandbox(ctx context.Context, _ *agentpb.DestroySandboxRequest) (*emptypb.Empty, error) {
	sb, err := s.pod()
	if err != nil {
		return nil, err
	}
	err = sb.Destroy(ctx)
	if s.afterDestroy != nil {
		go s.afterDestroy()
	}
	return okEmpty(err)
}

// GetOOMEvent blocks until a container hits OOM.
func (s *Service) GetOOMEvent(ctx context.Context, _ *agentpb.GetOOMEventRequest) (*agentpb.OOMEvent, error) {
	sb, err := s.pod()
	if err != nil {
		return nil, err
	}
	id, err := sb.WaitOOM(ctx)
	if err != nil {
		return nil, err
	}
	return &agentpb.OOMEvent{ContainerId: id}, nil
}

func (s *Service) pod() (*sandbox.Sandbox, error) {
	if s.sandbox == nil {
		return nil, errdefs.ErrNotImplemented.WithMessage("this agent runs no containers")
	}
	return s.sandbox, nil
}

func okEmpty(err error) (*emptypb.Empty, error) {
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}
