package server

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"
)

// endOfStream is a refusal the gate wants answered as the end of a stream
// (see Gate); refusal is nil when the request was not refused that way.
type endOfStream struct{ refusal error }

type endOfStreamKey struct{}

// answersEndOfStream reports whether a gate refusal asks to be answered as
// the end of a stream.
func answersEndOfStream(err error) bool {
	var e interface{ AnswerEndOfStream() bool }
	return errors.As(err, &e) && e.AnswerEndOfStream()
}

// RefusedAsEndOfStream reports whether the gate refused the request being
// handled and the server answers it as the end of the stream. A handler that
// sees it must not perform the operation; it only keeps the stream drained,
// since the runtime stops reading at end of stream. Whatever it returns, the
// reply carries no data.
func RefusedAsEndOfStream(ctx context.Context) bool {
	e, ok := ctx.Value(endOfStreamKey{}).(*endOfStream)
	return ok && e.refusal != nil
}

// reply answers the refused request with an empty message of the handler's
// reply type, so that no data leaves even if the handler read some. A
// handler that failed or returned no message leaves no type to answer with:
// the refusal is the answer then.
func (e *endOfStream) reply(resp any, err error) (any, error) {
	m, ok := resp.(proto.Message)
	if err != nil || !ok {
		return nil, e.refusal
	}
	return m.ProtoReflect().Type().New().Interface(), nil
}
