package policy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

func openLog(t *testing.T, path string) *decisionlog.Log {
	t.Helper()
	dl, err := decisionlog.Open(path, decisionlog.Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	return dl
}

func verifyFile(t *testing.T, path string) decisionlog.Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := decisionlog.Verify([]decisionlog.Source{{Name: path, R: f}})
	if err != nil {
		t.Fatalf("chain does not verify: %v", err)
	}
	return res
}

// With the decision log's file system full, a confidential engine refuses
// every request it cannot record (UNAVAILABLE), a denied ReadStdout
// included, and refuses SetPolicy; a non-confidential one lets requests
// through as before. Once space is back the chain continues unbroken.
func TestConfidentialRefusesUnrecordedDecisions(t *testing.T) {
	dir := testenv.SmallTmpfs(t, "64k")
	strict := filepath.Join(dir, "strict.log")
	sdl := openLog(t, strict)
	conf := policy.NewEngineWith(load(t, builtin(t, policy.AllowAll)), policy.EngineOptions{Decisions: sdl, Confidential: true})
	lax := policy.NewEngineWith(load(t, builtin(t, policy.AllowAll)), policy.EngineOptions{Decisions: openLog(t, filepath.Join(dir, "lax.log"))})
	stateful := policy.NewEngineWith(load(t, readFile(t, "testdata/stateful.rego")), policy.EngineOptions{Decisions: openLog(t, filepath.Join(dir, "state.log")), Confidential: true})
	if err := gate(conf, "CreateContainer", createReq("c1", "pod"), nil); err != nil {
		t.Fatal(err)
	}
	filler := testenv.FillUp(t, dir)
	// A refused decision with state ops releases the state lock: the next
	// request after space is back does not hang.
	var serr error
	for i := 0; i < 64 && serr == nil; i++ {
		serr = gate(stateful, "CreateContainer", createReq(fmt.Sprint("s", i), "pod-s", "/pause"), nil)
	}
	if !errdefs.IsUnavailable(serr) {
		t.Fatalf("unrecorded stateful CreateContainer: %v", serr)
	}
	// The log file's last page still has room for a few entries.
	big := strings.Repeat("a", 8192)
	recorded := 2
	var err error
	for i := 0; i < 64; i++ {
		if err = gate(conf, "CreateContainer", createReq("c2", "pod"), nil); err != nil {
			break
		}
		recorded++
	}
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "cannot be recorded") {
		t.Fatalf("unrecorded CreateContainer: %v", err)
	}
	// Take what room is left with entries smaller than any the engine writes.
	for i := 0; i < 64; i++ {
		if _, err := sdl.Append(decisionlog.Entry{Kind: decisionlog.KindDecision}); err != nil {
			break
		}
		recorded++
	}
	_, err = conf.Gate(context.Background(), "ReadStdout", &agentpb.ReadStreamRequest{ContainerId: big, ExecId: big, Len: 1})
	if !errdefs.IsUnavailable(err) {
		t.Fatalf("unrecorded ReadStdout: %v", err)
	}
	// ... and answered as end of stream, as a denied read is.
	if eos := (*policy.EndOfStream)(nil); !errors.As(err, &eos) {
		t.Fatalf("unrecorded ReadStdout refused with %T, want *policy.EndOfStream", err)
	}
	before := conf.Policy()
	err = conf.SetPolicy(context.Background(), builtin(t, policy.AllowAllExceptExec)+"\n# "+big+"\n", "SetPolicy")
	if !errdefs.IsUnavailable(err) || conf.Policy() != before {
		t.Fatalf("unrecorded SetPolicy: %v (policy replaced: %v)", err, conf.Policy() != before)
	}
	if err := gate(lax, "CreateContainer", createReq("c2", "pod", big), nil); err != nil {
		t.Fatalf("non-confidential engine refused: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := gate(conf, "CreateContainer", createReq("c3", "pod", big), nil); err != nil {
		t.Fatal(err)
	}
	if err := gate(stateful, "CreateContainer", createReq("s-last", "pod-s", "/pause"), nil); err != nil {
		t.Fatal(err)
	}
	// The refused requests left nothing behind.
	if res := verifyFile(t, strict); res.Entries != recorded+1 {
		t.Fatalf("%d entries, want %d", res.Entries, recorded+1)
	}
}

// headMeasurer records the decision log heads it is handed; err fails them.
type headMeasurer struct {
	heads []string
	err   error
}

func (m *headMeasurer) RecordPolicyLoad(string) error { return nil }
func (m *headMeasurer) RecordPolicySet(string) error  { return nil }
func (m *headMeasurer) RecordDecisionHead(h string) error {
	m.heads = append(m.heads, h)
	return m.err
}

// The chain head is measured when SetPolicy succeeds and before the log
// rotates; a measurement that fails fails SetPolicy.
func TestHeadMeasuredOnSetPolicyAndRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	m := &headMeasurer{}
	e, err := policy.Boot(context.Background(), policy.BootConfig{
		PolicyFile:          filepath.Join(t.TempDir(), "none.rego"),
		DecisionLog:         path,
		DecisionLogMaxBytes: 4096,
		ReadFile:            func(string) ([]byte, error) { return nil, os.ErrNotExist },
		Measurer:            m,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.SetPolicy(context.Background(), builtin(t, policy.AllowAll), "SetPolicy"); err != nil {
		t.Fatal(err)
	}
	if len(m.heads) != 1 || m.heads[0] != e.DecisionHead() {
		t.Fatalf("after SetPolicy measured %v, head %s", m.heads, e.DecisionHead())
	}
	for i := 0; i < 200 && len(m.heads) == 1; i++ {
		if err := gate(e, "CreateContainer", createReq("c", "pod"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(m.heads) != 2 {
		t.Fatalf("no head measured at rotation: %v", m.heads)
	}
	if res := verifyFile(t, path+".1"); res.LastHash != m.heads[1] {
		t.Fatalf("measured %s, rotated file ends at %s", m.heads[1], res.LastHash)
	}
	m.err = errors.New("rtmr extend failed")
	if err := e.SetPolicy(context.Background(), builtin(t, policy.AllowAll), "SetPolicy"); err == nil || !strings.Contains(err.Error(), "rtmr extend failed") {
		t.Fatalf("SetPolicy with a failing measurement: %v", err)
	}
}
