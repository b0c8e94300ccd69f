package server_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/containerd/ttrpc"

	"github.com/cocoon-tee/cocoon/agent/rpc"
	"github.com/cocoon-tee/cocoon/agent/server"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// bareHealth is the baseline: a plain ttrpc server with no interceptor.
type bareHealth struct{ rpc.Health }

func serveBare(b *testing.B) *ttrpc.Client {
	ts, err := ttrpc.NewServer()
	if err != nil {
		b.Fatal(err)
	}
	agentpb.RegisterHealthService(ts, bareHealth{})
	return listenAndDial(b, func(l net.Listener) { ts.Serve(context.Background(), l) }, func() { ts.Close() })
}

func serveAgent(b *testing.B) *ttrpc.Client {
	srv, err := server.New(server.Options{Agent: rpc.New(rpc.Deps{}), Health: rpc.Health{}})
	if err != nil {
		b.Fatal(err)
	}
	return listenAndDial(b, func(l net.Listener) { srv.Serve(context.Background(), l) }, func() { srv.Close() })
}

func listenAndDial(b *testing.B, serve func(net.Listener), stop func()) *ttrpc.Client {
	l, err := net.Listen("unix", filepath.Join(b.TempDir(), "s.sock"))
	if err != nil {
		b.Fatal(err)
	}
	go serve(l)
	b.Cleanup(stop)
	conn, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c := ttrpc.NewClient(conn)
	b.Cleanup(func() { c.Close() })
	return c
}

func benchCheck(b *testing.B, c *ttrpc.Client) {
	h := agentpb.NewHealthClient(c)
	ctx := context.Background()
	req := &agentpb.CheckRequest{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := h.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHealthCheck compares one Health.Check round trip over a unix
// socket through the agent's server (interceptor chain included) with a bare
// ttrpc server answering the same call.
func BenchmarkHealthCheck(b *testing.B) {
	b.Run("bare-ttrpc", func(b *testing.B) { benchCheck(b, serveBare(b)) })
	b.Run("agent", func(b *testing.B) { benchCheck(b, serveAgent(b)) })
}
