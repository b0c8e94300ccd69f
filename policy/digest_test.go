package policy_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// The decision log's input_sha256 is the sha256 of the input's canonical
// JSON (encoding/json over the generic document) whichever way the gate
// computed it: from the message, or from CopyFile's derived input.
func TestDecisionLogInputDigest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	dl, err := decisionlog.Open(path, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := policy.NewEngine(load(t, builtin(t, policy.AllowAll)), dl, nil)
	reqs := []proto.Message{
		createReq("c1", "pod <a&b>", "/bin/sh", "-c", "echo \"hi\"\n"),
		&agentpb.CopyFileRequest{Path: "/run/x", FileMode: 0o120777, Data: []byte("target")},
		&agentpb.ReseedRandomDevRequest{Data: []byte{0, 255}},
	}
	var want []string
	for _, r := range reqs {
		doc, err := input.ForRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		want = append(want, hex.EncodeToString(sum[:]))
		name := string(r.ProtoReflect().Descriptor().Name())
		method := map[string]string{"CreateContainerRequest": "CreateContainer", "CopyFileRequest": "CopyFile", "ReseedRandomDevRequest": "ReseedRandomDev"}[name]
		if err := gate(e, method, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := dl.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var en struct {
			Kind  string `json:"kind"`
			Input string `json:"input_sha256"`
		}
		if err := json.Unmarshal(sc.Bytes(), &en); err != nil {
			t.Fatal(err)
		}
		if en.Kind == decisionlog.KindDecision {
			got = append(got, en.Input)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d decisions logged, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: input_sha256 %s, want %s", i, got[i], want[i])
		}
	}
}
