package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// serialGate admits one stateful decision at a time, like the policy engine:
// a decision holds the slot until its finish runs.
type serialGate struct {
	slot     chan struct{}
	finished chan error
}

func newSerialGate() *serialGate {
	return &serialGate{slot: make(chan struct{}, 1), finished: make(chan error, 10)}
}

func (g *serialGate) gate(ctx context.Context, _ string, _ any) (func(error), error) {
	select {
	case g.slot <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return func(err error) {
		g.finished <- err
		<-g.slot
	}, nil
}

// A handler that panics after a stateful decision must still release the
// decision: otherwise every later stateful request waits forever.
func TestPanicAfterGateReleasesDecision(t *testing.T) {
	g := newSerialGate()
	_, c := start(t, g.gate)
	agent := agentpb.NewAgentServiceClient(c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// PauseContainer panics in the test agent after its request was decoded
	// and admitted.
	if _, err := agent.PauseContainer(ctx, &agentpb.PauseContainerRequest{ContainerId: "x"}); status.Code(err) != codes.Internal {
		t.Fatalf("panic gave %v, want Internal", err)
	}
	select {
	case err := <-g.finished:
		if status.Code(err) != codes.Internal {
			t.Fatalf("finish saw %v, want an Internal error", err)
		}
	case <-ctx.Done():
		t.Fatal("finish was never called for the panicking request")
	}

	_, err := agent.ResumeContainer(ctx, &agentpb.ResumeContainerRequest{ContainerId: "c"})
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || status.Code(err) != codes.NotFound {
		t.Fatalf("stateful request after a panic: %v (deadline %v)", err, ctx.Err())
	}
}
