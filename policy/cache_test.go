package policy_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// closingPolicy allows reading a stream until CloseStdin closes the
// container, a state change; and ExecProcess as the time allows (a rule
// whose decision no cache may keep).
const closingPolicy = `package agent_policy
import rego.v1
default ReadStreamRequest := false
ReadStreamRequest if not data.pstate[concat("", ["closed_", input.container_id])]
default WaitProcessRequest := false
WaitProcessRequest if not data.pstate.frozen
CloseStdinRequest := {"allowed": true, "ops": [{"op": "add", "path": concat("", ["/pstate/closed_", input.container_id]), "value": true}]}
FreezeRequest := {"allowed": true, "ops": [{"op": "add", "path": "/pstate/frozen", "value": true}]}
default ExecProcessRequest := false
ExecProcessRequest if time.now_ns() > data.pstate.not_before
`

func readStdout(e *policy.Engine, cid string) error {
	_, err := e.Gate(context.Background(), "ReadStdout", &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: cid, Len: 32 << 10})
	return err
}

// commit runs a request whose decision changes state, as a successful
// operation.
func commit(t *testing.T, e *policy.Engine, method string, req any) {
	t.Helper()
	finish, err := e.Gate(context.Background(), method, req)
	if err != nil || finish == nil {
		t.Fatalf("%s: %v (finish %v), want allowed with ops", method, err, finish != nil)
	}
	finish(nil)
}

// A repeated decision follows the state: once CloseStdin closed c1, its
// reads are refused, while c2's are still allowed; and a rule that reads
// no input (WaitProcess) follows the state too.
func TestDecisionCacheFollowsState(t *testing.T) {
	e := policy.NewEngine(load(t, closingPolicy), nil, nil)
	for i := 0; i < 3; i++ {
		if err := readStdout(e, "c1"); err != nil {
			t.Fatalf("read %d of c1: %v", i, err)
		}
		if _, err := e.Gate(context.Background(), "WaitProcess", &agentpb.WaitProcessRequest{ContainerId: "c1"}); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
	commit(t, e, "CloseStdin", &agentpb.CloseStdinRequest{ContainerId: "c1"})
	var eos *policy.EndOfStream
	if err := readStdout(e, "c1"); !errors.As(err, &eos) {
		t.Fatalf("read of closed c1: %v, want refused", err)
	}
	if err := readStdout(e, "c2"); err != nil {
		t.Fatalf("read of c2: %v", err)
	}
	if err := e.SetPolicy(context.Background(), closingPolicy, "test"); err != nil {
		t.Fatal(err)
	}
	if err := readStdout(e, "c1"); err != nil {
		t.Fatalf("read of c1 under a new policy (fresh state): %v", err)
	}
}

// A state change whose operation failed changes nothing, so the cached
// decisions stay; one that is committed changes them.
func TestDecisionCacheDiscardedOpsKeepDecisions(t *testing.T) {
	e := policy.NewEngine(load(t, closingPolicy), nil, nil)
	wait := func() error {
		_, err := e.Gate(context.Background(), "WaitProcess", &agentpb.WaitProcessRequest{ContainerId: "c1"})
		return err
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	// FreezeRequest is not an agent rpc: decide it through Decide, the
	// way the gate does, and fail its operation.
	p := e.Policy()
	_, pend, err := p.Decide(context.Background(), "FreezeRequest", map[string]any{})
	if err != nil || pend == nil {
		t.Fatalf("freeze: %v", err)
	}
	pend.Discard()
	if err := wait(); err != nil {
		t.Fatalf("after a discarded freeze: %v", err)
	}
	_, pend, err = p.Decide(context.Background(), "FreezeRequest", map[string]any{})
	if err != nil || pend == nil {
		t.Fatalf("freeze: %v", err)
	}
	if err := pend.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("after a committed freeze: %v, want denied", err)
	}
}

// Every agent request, decided twice in a row under each shipped policy
// and the stateful test policy, gets the same answer both times.
func TestDecisionCacheRepeatsVerdicts(t *testing.T) {
	policies := map[string]string{"stateful": readFile(t, "testdata/stateful.rego"), "closing": closingPolicy}
	for _, name := range policy.BuiltinNames() {
		policies[name] = builtin(t, name)
	}
	ctx := context.Background()
	for pname, text := range policies {
		e := policy.NewEngine(load(t, text), nil, nil)
		for m, req := range agentMethods(t) {
			var got [2]string
			for i := range got {
				finish, err := e.Gate(ctx, m, req)
				if finish != nil {
					finish(errOpFailed)
				}
				got[i] = fmt.Sprint(err)
			}
			if got[0] != got[1] {
				t.Errorf("%s / %s: first %s, then %s", pname, m, got[0], got[1])
			}
		}
	}
}

// Reads racing a state change: every read that starts after the change
// was committed is refused, none is answered from a decision cached for
// the state before.
func TestDecisionCacheConcurrentStateChange(t *testing.T) {
	e := policy.NewEngine(load(t, closingPolicy), nil, nil)
	var committed atomic.Bool
	var wg sync.WaitGroup
	stale := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				after := committed.Load()
				err := readStdout(e, "c1")
				if after && err == nil {
					stale <- fmt.Errorf("read %d allowed after the close was committed", i)
					return
				}
			}
		}()
	}
	commit(t, e, "CloseStdin", &agentpb.CloseStdinRequest{ContainerId: "c1"})
	committed.Store(true)
	wg.Wait()
	close(stale)
	for err := range stale {
		t.Error(err)
	}
}
