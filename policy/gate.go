package policy

import (
	"context"

	"github.com/containerd/errdefs"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/internal/errs"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// streamRead is the request of ReadStdout and ReadStderr.
const streamRead = "ReadStreamRequest"

// EndOfStream is how the gate refuses a stream read (ReadStdout,
// ReadStderr): the refusal is answered as the end of the stream, an empty
// reply, rather than as an error. The runtime then stops reading, and the
// agent keeps draining the stream, so a workload whose output the policy
// hides never blocks on a full pipe. This holds for every refusal: a denial,
// and in confidential mode a decision the decision log cannot record. Err
// is the refusal itself, for logs and errdefs.
type EndOfStream struct{ Err error }

func (e *EndOfStream) Error() string { return e.Err.Error() }
func (e *EndOfStream) Unwrap() error { return e.Err }

// AnswerEndOfStream tells the server to answer the refusal as the end of the
// stream (see server.Gate).
func (e *EndOfStream) AnswerEndOfStream() bool { return true }

// Gate decides an AgentService request; its signature is the server's Gate.
// A denial is PERMISSION_DENIED "<Name> is blocked by policy: <prints>",
// for CreateContainer led by the one-line reason (see denial);
// an undefined or malformed result is INTERNAL. Every refusal of a stream
// read is an *EndOfStream. For an allowed decision with ops, finish commits
// the state change only when the operation succeeded.
func (e *Engine) Gate(ctx context.Context, method string, req any) (func(error), error) {
	finish, err := e.gate(ctx, method, req)
	if err != nil {
		if m, ok := req.(proto.Message); ok && m.ProtoReflect().Descriptor().Name() == streamRead {
			return nil, &EndOfStream{Err: err}
		}
	}
	return finish, err
}

func (e *Engine) gate(ctx context.Context, method string, req any) (func(error), error) {
	msg, ok := req.(proto.Message)
	if !ok {
		return nil, errs.Newf(errdefs.ErrInternal, "%s: request is %T, not a protobuf message", method, req)
	}
	name := string(msg.ProtoReflect().Descriptor().Name())
	p := e.cur.Load()
	_, derived := msg.(*agentpb.CopyFileRequest)
	// A rule that never looks at input gets an empty one; otherwise the
	// input goes straight from the message to OPA's value form. CopyFile's
	// derivation also validates the request, so it always runs.
	var in ast.Value = ast.NewObject()
	if derived || p.readsInput(name) {
		v, err := e.inputs.ForRequest(msg)
		if err != nil {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "%s: %v", name, err)
		}
		in = v
	}
	digest := func() string { return inputDigest(in) }
	if !derived {
		// The request is its own input: hash it without building JSON.
		digest = func() string { return e.canon.Digest(msg) }
	}
	grant, changed, err := e.observe(ctx, name, msg, in)
	if changed {
		// The input holds more than the request: hash all of it.
		digest = func() string { return inputDigest(in) }
	}
	// What the request asks, for the audit: only where there is a log
	// to write it to, and only for the few requests audit lists.
	var sum *decisionlog.Summary
	if e.dlog != nil {
		sum = summarize(msg, grant)
	}
	if err != nil {
		return nil, e.refuse(p, name, digest, sum, err)
	}
	key := ""
	if grant == nil {
		key = p.cacheKey(name, msg, in)
	}
	return e.check(ctx, p, name, in, key, digest, grant, sum)
}
