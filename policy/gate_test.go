package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// A refused ReadStdout or ReadStderr is answered as end of stream, and
// keeps its class; other refusals are plain errors.
func TestRefusedStreamReadAnswersEndOfStream(t *testing.T) {
	allow := builtin(t, policy.AllowAll)
	text := strings.Replace(allow, "default ReadStreamRequest := true", "default ReadStreamRequest := false", 1)
	text = strings.Replace(text, "default ExecProcessRequest := true", "default ExecProcessRequest := false", 1)
	if text == allow {
		t.Fatal("allow-all policy has no defaults to flip")
	}
	e := policy.NewEngine(load(t, text), nil, nil)
	ctx := context.Background()
	for _, m := range []string{"ReadStdout", "ReadStderr"} {
		_, err := e.Gate(ctx, m, &agentpb.ReadStreamRequest{ContainerId: "c", Len: 1})
		var eos *policy.EndOfStream
		if !errors.As(err, &eos) || !eos.AnswerEndOfStream() || !errdefs.IsPermissionDenied(err) {
			t.Fatalf("%s refused with %T %v, want a PERMISSION_DENIED end of stream", m, err, err)
		}
	}
	_, err := e.Gate(ctx, "ExecProcess", &agentpb.ExecProcessRequest{ContainerId: "c"})
	var eos *policy.EndOfStream
	if errors.As(err, &eos) || !errdefs.IsPermissionDenied(err) {
		t.Fatalf("ExecProcess refused with %T %v, want a plain PERMISSION_DENIED", err, err)
	}
}
