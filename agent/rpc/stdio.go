package rpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/internal/stream"
	"github.com/cocoon-tee/cocoon/agent/server"
	"github.com/cocoon-tee/cocoon/internal/errs"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// maxWrite bounds one WriteStdin; the runtime writes in chunks far smaller.
const maxWrite = 4 << 20

// stdioProcess finds the process a stdio request is for, once the sandbox
// lets its stdio be used (an exec whose I/O is being encrypted is not yet).
func (s *Service) stdioProcess(cid, execID string) (*container.Process, error) {
	_, p, err := s.process(cid, execID)
	if err != nil {
		return nil, err
	}
	sb, err := s.pod()
	if err != nil {
		return nil, err
	}
	if err := sb.StdioReady(cid, execID); err != nil {
		return nil, err
	}
	return p, nil
}

// WriteStdin writes to a process's stdin; empty data closes it, as in Kata.
func (s *Service) WriteStdin(ctx context.Context, r *agentpb.WriteStreamRequest) (*agentpb.WriteStreamResponse, error) {
	p, err := s.stdioProcess(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	if len(r.Data) > maxWrite {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "stdin write of %d bytes, more than %d", len(r.Data), maxWrite)
	}
	n, err := p.IO.Write(r.Data)
	if errors.Is(err, stream.ErrStdinClosed) {
		return nil, errdefs.ErrFailedPrecondition.WithMessage("stdin is closed")
	}
	if err != nil {
		return nil, err
	}
	return &agentpb.WriteStreamResponse{Len: uint32(n)}, nil
}

// ReadStdout returns one chunk of stdout; empty data is EOF.
func (s *Service) ReadStdout(ctx context.Context, r *agentpb.ReadStreamRequest) (*agentpb.ReadStreamResponse, error) {
	return s.read(ctx, r, stream.Stdout)
}

// ReadStderr returns one chunk of stderr; empty data is EOF.
func (s *Service) ReadStderr(ctx context.Context, r *agentpb.ReadStreamRequest) (*agentpb.ReadStreamResponse, error) {
	return s.read(ctx, r, stream.Stderr)
}

func (s *Service) read(ctx context.Context, r *agentpb.ReadStreamRequest, w stream.Which) (*agentpb.ReadStreamResponse, error) {
	p, err := s.stdioProcess(r.ContainerId, r.ExecId)
	if server.RefusedAsEndOfStream(ctx) {
		// The policy refused the read and the server answers EOF: the
		// runtime stops reading, so the agent drains the stream from now
		// on and the workload never blocks on a full pipe.
		if err == nil {
			p.IO.Discard(w)
		}
		return &agentpb.ReadStreamResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	// The chunk is lent until ttrpc has marshalled the response (it
	// cancels ctx then), so the stream reuses its buffers. This holds as
	// long as no interceptor hands the handler a context it cancels
	// before returning (agent/server adds values only).
	data, err := p.IO.ReadLent(ctx, w, int(r.Len))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", w, err)
	}
	return &agentpb.ReadStreamResponse{Data: data}, nil
}

// CloseStdin closes a process's stdin.
func (s *Service) CloseStdin(ctx context.Context, r *agentpb.CloseStdinRequest) (*emptypb.Empty, error) {
	p, err := s.stdioProcess(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	return okEmpty(p.IO.CloseStdin())
}

// TtyWinResize resizes a process's terminal.
func (s *Service) TtyWinResize(ctx context.Context, r *agentpb.TtyWinResizeRequest) (*emptypb.Empty, error) {
	p, err := s.stdioProcess(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	if r.Row > 0xffff || r.Column > 0xffff {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "window size %dx%d is too large", r.Row, r.Column)
	}
	err = p.IO.Resize(uint16(r.Row), uint16(r.Column))
	if stream.ErrNoTerminal(err) {
		return nil, errs.Newf(errdefs.ErrFailedPrecondition, "process %q has no terminal", r.ExecId)
	}
	return okEmpty(err)
}
