// Package server runs the agent's ttrpc endpoint: it registers the Kata
// AgentService and Health services and wraps every call in one interceptor
// chain — panic recovery, logging, request decoding, the policy gate and the
// mapping of domain errors to ttrpc status codes.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"github.com/containerd/ttrpc"

	"github.com/cocoon-tee/cocoon/internal/logctx"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Gate is consulted for every AgentService request after it is decoded and
// before its handler runs. A nil error admits the request; finish, when not
// nil, is called with the handler's error so that state a decision changes is
// committed only when the operation succeeded. Health requests never reach it.
//
// The error says how a refusal is answered. It is the reply's status, unless
// it has a method AnswerEndOfStream() bool that returns true (the policy
// engine's refusal of a stream read): then the handler still runs, with
// RefusedAsEndOfStream(ctx) true, so that it can keep the stream drained
// without performing the read, and the reply is an empty message of the
// handler's reply type — for ReadStdout and ReadStderr, end of stream.
type Gate func(ctx context.Context, method string, req any) (finish func(error), err error)

// Options configure a Server.
type Options struct {
	Agent  agentpb.AgentServiceService
	Health agentpb.HealthService
	// Gate may be nil: every request is then admitted.
	Gate Gate
	Log  *slog.Logger
}

// Server serves the agent API on any number of listeners.
type Server struct {
	ttrpc *ttrpc.Server
	conns *connSet
}

// New builds a server; it does not listen yet.
func New(o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	chain := &chain{gate: o.Gate, log: slog.New(logctx.NewHandler(o.Log.Handler()))}
	ts, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(chain.intercept))
	if err != nil {
		return nil, err
	}
	agentpb.RegisterAgentServiceService(ts, o.Agent)
	agentpb.RegisterHealthService(ts, o.Health)
	return &Server{ttrpc: ts, conns: newConnSet()}, nil
}

// Serve accepts connections on l until Shutdown or Close. Each connection
// handles its requests concurrently: the Kata runtime blocks several calls
// (WaitProcess, ReadStdout, GetOOMEvent) on one connection at once.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	err := s.ttrpc.Serve(ctx, trackingListener{Listener: l, conns: s.conns})
	if errors.Is(err, ttrpc.ErrServerClosed) {
		return nil
	}
	return err
}

// Drain waits until every client has hung up, or until ctx ends. It closes
// nothing: a reply already handed to the socket still reaches a peer that is
// reading it. The agent drains before it powers the VM off after
// DestroySandbox, whose reply would otherwise be lost with the VM.
func (s *Server) Drain(ctx context.Context) error {
	return s.conns.wait(ctx)
}

// Shutdown stops accepting connections and waits for idle ones to close,
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.ttrpc.Shutdown(ctx)
}

// Close stops the server at once.
func (s *Server) Close() error {
	return s.ttrpc.Close()
}
