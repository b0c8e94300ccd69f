package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/agent/rpc"
	"github.com/cocoon-tee/cocoon/agent/server"
	"github.com/cocoon-tee/cocoon/internal/logctx"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// lockedBuffer is a log destination two goroutines may write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// domainAgent logs from inside a handler with the handler's context, as the
// domain packages do, through its own logger (the daemon wraps every logger
// it hands out with logctx).
type domainAgent struct {
	*rpc.Service
	log *slog.Logger
}

func (a *domainAgent) SignalProcess(ctx context.Context, _ *agentpb.SignalProcessRequest) (*emptypb.Empty, error) {
	a.log.InfoContext(ctx, "signalled")
	return &emptypb.Empty{}, nil
}

// A domain log line written while serving a request names the request:
// method, container_id and exec_id, without the handler passing them on.
func TestDomainLogsNameTheRequest(t *testing.T) {
	var out lockedBuffer
	log := slog.New(logctx.NewHandler(slog.NewJSONHandler(&out, nil)))
	c := serve(t, server.Options{Agent: &domainAgent{Service: rpc.New(rpc.Deps{}), log: log}, Health: rpc.Health{AgentVersion: "t"}})

	req := &agentpb.SignalProcessRequest{ContainerId: "c1", ExecId: "e1", Signal: 15}
	if _, err := agentpb.NewAgentServiceClient(c).SignalProcess(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	lines := out.lines(t)
	if len(lines) != 1 {
		t.Fatalf("want the handler's one line, got %v", lines)
	}
	got := lines[0]
	if got["msg"] != "signalled" || got["method"] != "SignalProcess" || got["container_id"] != "c1" || got["exec_id"] != "e1" {
		t.Errorf("line %v does not name the request", got)
	}
}
