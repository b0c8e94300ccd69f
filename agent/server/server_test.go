package server_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/agent/rpc"
	"github.com/cocoon-tee/cocoon/agent/server"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// testAgent overrides a few rpcs of the real service to observe the server.
type testAgent struct {
	*rpc.Service
	arrived chan struct{}
	release chan struct{}
}

func (a *testAgent) WaitProcess(ctx context.Context, _ *agentpb.WaitProcessRequest) (*agentpb.WaitProcessResponse, error) {
	a.arrived <- struct{}{}
	select {
	case <-a.release:
		return &agentpb.WaitProcessResponse{Status: 7}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *testAgent) PauseContainer(context.Context, *agentpb.PauseContainerRequest) (*emptypb.Empty, error) {
	panic("boom")
}

func (a *testAgent) ResumeContainer(_ context.Context, r *agentpb.ResumeContainerRequest) (*emptypb.Empty, error) {
	return nil, errdefs.ErrNotFound.WithMessage("container " + r.ContainerId)
}

func start(t *testing.T, gate server.Gate) (*testAgent, *ttrpc.Client) {
	t.Helper()
	a := &testAgent{Service: rpc.New(rpc.Deps{}), arrived: make(chan struct{}, 100), release: make(chan struct{})}
	return a, serve(t, server.Options{Agent: a, Health: rpc.Health{AgentVersion: "t"}, Gate: gate})
}

// serve runs a server with o on a unix socket of the test's own and
// returns a client connected to it.
func serve(t *testing.T, o server.Options) *ttrpc.Client {
	t.Helper()
	srv, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	conn, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := ttrpc.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c
}

// The Kata runtime blocks WaitProcess, ReadStdout and GetOOMEvent on one
// connection at once: all 50 calls must be inside the handler together.
func TestConcurrentBlockingCallsOnOneConnection(t *testing.T) {
	a, c := start(t, nil)
	agent := agentpb.NewAgentServiceClient(c)
	const n = 50
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var ok atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := agent.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: "c"})
			if err == nil && r.Status == 7 {
				ok.Add(1)
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case <-a.arrived:
		case <-ctx.Done():
			t.Fatalf("only %d of %d blocking calls reached the handler: calls are serialised", i, n)
		}
	}
	// A non-blocking call still gets through while 50 are parked.
	if _, err := agentpb.NewHealthClient(c).Check(ctx, &agentpb.CheckRequest{}); err != nil {
		t.Fatalf("Check while calls are blocked: %v", err)
	}
	close(a.release)
	wg.Wait()
	if ok.Load() != n {
		t.Fatalf("%d of %d calls completed", ok.Load(), n)
	}
}

func TestPanicBecomesInternal(t *testing.T) {
	_, c := start(t, nil)
	agent := agentpb.NewAgentServiceClient(c)
	ctx := context.Background()
	_, err := agent.PauseContainer(ctx, &agentpb.PauseContainerRequest{ContainerId: "x"})
	if status.Code(err) != codes.Internal {
		t.Fatalf("panic gave %v, want Internal", err)
	}
	if _, err := agentpb.NewHealthClient(c).Check(ctx, &agentpb.CheckRequest{}); err != nil {
		t.Fatalf("server died after panic: %v", err)
	}
}

func TestDomainErrorsMapToCodes(t *testing.T) {
	_, c := start(t, nil)
	_, err := agentpb.NewAgentServiceClient(c).ResumeContainer(context.Background(), &agentpb.ResumeContainerRequest{ContainerId: "c1"})
	st, _ := status.FromError(err)
	if st.Code() != codes.NotFound || st.Message() != "container c1" {
		t.Fatalf("got %v", err)
	}
}

func TestMalformedPayloadIsInvalidArgument(t *testing.T) {
	_, c := start(t, nil)
	garbage := &emptypb.Empty{}
	garbage.ProtoReflect().SetUnknown([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}) // length prefix past the end
	var resp emptypb.Empty
	err := c.Call(context.Background(), "grpc.AgentService", "CreateContainer", garbage, &resp)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
}

func TestOversizedMessageIsRefused(t *testing.T) {
	_, c := start(t, nil)
	req := &agentpb.WriteStreamRequest{ContainerId: "c", Data: make([]byte, 5<<20)}
	_, err := agentpb.NewAgentServiceClient(c).WriteStdin(context.Background(), req)
	if err == nil || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("got %v, want ResourceExhausted", err)
	}
	if _, err := agentpb.NewHealthClient(c).Check(context.Background(), &agentpb.CheckRequest{}); err != nil {
		t.Fatalf("connection unusable after oversized message: %v", err)
	}
}

func TestGateSeesDecodedRequestAndOutcome(t *testing.T) {
	var seen []string
	var outcome error
	gate := func(_ context.Context, method string, req any) (func(error), error) {
		r, ok := req.(*agentpb.ResumeContainerRequest)
		if method == "ResumeContainer" && ok && r.ContainerId == "denied" {
			return nil, status.Error(codes.PermissionDenied, "ResumeContainerRequest is blocked by policy")
		}
		seen = append(seen, method)
		return func(err error) { outcome = err }, nil
	}
	_, c := start(t, gate)
	ctx := context.Background()
	agent := agentpb.NewAgentServiceClient(c)
	if _, err := agent.ResumeContainer(ctx, &agentpb.ResumeContainerRequest{ContainerId: "denied"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("gate denial lost: %v", err)
	}
	if _, err := agent.ResumeContainer(ctx, &agentpb.ResumeContainerRequest{ContainerId: "c"}); status.Code(err) != codes.NotFound {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(outcome, errdefs.ErrNotFound) {
		t.Fatalf("finish saw %v, want the handler's error", outcome)
	}
	if _, err := agentpb.NewHealthClient(c).Check(ctx, &agentpb.CheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "ResumeContainer" {
		t.Fatalf("gate saw %v; Health must not be gated", seen)
	}
}

// endOfStream is a gate refusal answered as the end of a stream, as the
// policy engine refuses stream reads.
type endOfStream struct{ error }

func (endOfStream) AnswerEndOfStream() bool { return true }

// readAgent's ReadStdout records what it saw and returns data, which a read
// refused as end of stream must not carry.
type readAgent struct {
	*rpc.Service
	hooked string
}

func (a *readAgent) ReadStdout(ctx context.Context, r *agentpb.ReadStreamRequest) (*agentpb.ReadStreamResponse, error) {
	if server.RefusedAsEndOfStream(ctx) {
		a.hooked = r.ContainerId
	}
	return &agentpb.ReadStreamResponse{Data: []byte("hidden output")}, nil
}

// A refusal that asks for it is answered as end of stream, with no data
// whatever the handler returns; the handler sees the refusal so that it can
// keep the stream drained. Other refusals stay errors.
func TestRefusalAnsweredAsEndOfStream(t *testing.T) {
	gate := func(_ context.Context, method string, _ any) (func(error), error) {
		err := status.Error(codes.PermissionDenied, method+" is blocked by policy")
		if method == "ReadStdout" {
			return nil, endOfStream{err}
		}
		return nil, err
	}
	a := &readAgent{Service: rpc.New(rpc.Deps{})}
	srv, err := server.New(server.Options{Agent: a, Health: rpc.Health{}, Gate: gate})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("unix", filepath.Join(t.TempDir(), "a.sock"))
	go srv.Serve(context.Background(), l)
	defer srv.Close()
	conn, _ := net.Dial("unix", l.Addr().String())
	c := agentpb.NewAgentServiceClient(ttrpc.NewClient(conn))
	ctx := context.Background()
	r, err := c.ReadStdout(ctx, &agentpb.ReadStreamRequest{ContainerId: "c9", Len: 10})
	if err != nil || len(r.Data) != 0 || a.hooked != "c9" {
		t.Fatalf("denied read answered %v, %v (handler saw %q)", r, err, a.hooked)
	}
	if _, err := c.ReadStderr(ctx, &agentpb.ReadStreamRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("unhooked denial: %v", err)
	}
}

// Drain returns only once every client has hung up: the agent relies on it to
// keep the VM up until the host has read DestroySandbox's reply.
func TestDrainWaitsForClientsToHangUp(t *testing.T) {
	srv, err := server.New(server.Options{Agent: rpc.New(rpc.Deps{}), Health: rpc.Health{AgentVersion: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	if err := srv.Drain(context.Background()); err != nil {
		t.Fatalf("drain with no client: %v", err)
	}
	conn, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := ttrpc.NewClient(conn)
	if _, err := agentpb.NewHealthClient(c).Check(context.Background(), &agentpb.CheckRequest{}); err != nil {
		t.Fatal(err)
	}
	// The client is connected and idle: Drain must still be waiting when
	// its context ends.
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := srv.Drain(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain with a connected client: %v, want context.DeadlineExceeded", err)
	}
	c.Close()
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := srv.Drain(ctx); err != nil {
		t.Fatalf("drain after the client hung up: %v", err)
	}
}
