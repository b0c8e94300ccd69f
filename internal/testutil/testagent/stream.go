package testagent

import (
	"context"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// StreamReader is the part of the agent API ReadStream reads through: the
// ttrpc client, or an in-process service.
type StreamReader interface {
	ReadStdout(context.Context, *agentpb.ReadStreamRequest) (*agentpb.ReadStreamResponse, error)
	ReadStderr(context.Context, *agentpb.ReadStreamRequest) (*agentpb.ReadStreamResponse, error)
}

// ReadStream reads a process's stdout, or its stderr, in 32 KiB reads as
// the runtime does, until the stream ends (an empty read). On an error it
// returns what it read before it, with the error.
func ReadStream(ctx context.Context, a StreamReader, cid, eid string, stderr bool) ([]byte, error) {
	read := a.ReadStdout
	if stderr {
		read = a.ReadStderr
	}
	var out []byte
	for {
		r, err := read(ctx, &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: eid, Len: 32 << 10})
		if err != nil {
			return out, err
		}
		if len(r.Data) == 0 {
			return out, nil
		}
		out = append(out, r.Data...)
	}
}
