// Package client connects to a Kata-compatible agent over any transport the
// agent listens on, plus hybrid vsock, and exposes the typed ttrpc clients.
package client

import (
	"context"
	"fmt"

	"github.com/containerd/ttrpc"

	"github.com/cocoon-tee/cocoon/agent/transport"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Client is one ttrpc connection to an agent; its typed clients share it,
// as the Kata runtime's do.
type Client struct {
	Agent  agentpb.AgentServiceService
	Health agentpb.HealthService
	// TTRPC is the raw connection, for calls by method name.
	TTRPC *ttrpc.Client
}

// Dial connects to addr (vsock://, unix://, tcp:// or hvsock://).
func Dial(ctx context.Context, addr string) (*Client, error) {
	a, err := transport.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	conn, err := transport.Dial(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", a, err)
	}
	tc := ttrpc.NewClient(conn)
	return &Client{
		Agent:  agentpb.NewAgentServiceClient(tc),
		Health: agentpb.NewHealthClient(tc),
		TTRPC:  tc,
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.TTRPC.Close() }
