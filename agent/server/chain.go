package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cocoon-tee/cocoon/internal/logctx"
)

const agentServicePrefix = "/grpc.AgentService/"

// chain is the one interceptor every request passes through.
type chain struct {
	gate Gate
	log  *slog.Logger
}

// errDenied marks a gate refusal inside the handler call.
type errDenied struct{ err error }

func (e errDenied) Error() string { return e.err.Error() }

func (c *chain) intercept(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (resp any, err error) {
	start := time.Now()
	// finish is what the gate took for this request (for the policy engine, the
	// slot that serialises stateful decisions). It must run on every path out
	// of the handler, a panic included, or the next stateful request waits
	// forever; so it runs in the same deferred function that recovers.
	var finish func(error)
	defer func() {
		if p := recover(); p != nil {
			c.log.ErrorContext(ctx, "panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "%s: internal error: %v", shortName(info.FullMethod), p)
		}
		if finish != nil {
			c.finish(info.FullMethod, finish, err)
		}
		err = toStatus(err)
		c.logCall(ctx, start, err)
	}()

	// Log lines written while serving the request name it (logctx); the
	// names are read only when a line is logged. req is set by decode,
	// before the handler does anything else.
	var req any
	ctx = logctx.Attach(ctx, func() []slog.Attr { return requestAttrs(info.FullMethod, req) })
	gated := c.gate != nil && strings.HasPrefix(info.FullMethod, agentServicePrefix)
	// eos holds a refusal the gate wants answered as end of stream; the
	// handler finds it through its context (RefusedAsEndOfStream).
	var eos endOfStream
	if gated {
		ctx = context.WithValue(ctx, endOfStreamKey{}, &eos)
	}
	decode := func(v any) error {
		if err := unmarshal(v); err != nil {
			return status.Errorf(codes.InvalidArgument, "%s: malformed request: %v", shortName(info.FullMethod), err)
		}
		req = v
		if !gated {
			return nil
		}
		if finish != nil {
			// A handler decodes once; a second decision would replace the
			// first one's finish and leak it.
			return status.Errorf(codes.Internal, "%s: request decoded twice", shortName(info.FullMethod))
		}
		f, err := c.gate(ctx, shortName(info.FullMethod), v)
		if err != nil {
			if answersEndOfStream(err) {
				eos.refusal = err
				return nil
			}
			return errDenied{err}
		}
		finish = f
		return nil
	}
	resp, err = method(ctx, decode)
	if d, ok := err.(errDenied); ok {
		return nil, d.err
	}
	if eos.refusal != nil {
		return eos.reply(resp, err)
	}
	return resp, err
}

// finish hands the handler's outcome to the gate. A panic in the gate's own
// bookkeeping is logged rather than allowed to take the agent down with it.
func (c *chain) finish(method string, finish func(error), err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("panic in gate finish", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	finish(err)
}

func (c *chain) logCall(ctx context.Context, start time.Time, err error) {
	lvl := slog.LevelDebug
	var code codes.Code
	if err != nil {
		code = status.Code(err)
		if code != codes.NotFound && code != codes.Unimplemented {
			lvl = slog.LevelWarn
		}
	}
	if !c.log.Enabled(ctx, lvl) {
		return
	}
	// The request's method and ids come from the context (logctx).
	attrs := []slog.Attr{slog.Duration("duration", time.Since(start))}
	if err != nil {
		st, _ := status.FromError(err)
		attrs = append(attrs, slog.String("code", code.String()), slog.String("error", st.Message()))
	}
	c.log.LogAttrs(ctx, lvl, "rpc", attrs...)
}

// requestAttrs names a decoded request in log lines: its method and, where
// the message has them, its container_id and exec_id.
func requestAttrs(method string, req any) []slog.Attr {
	attrs := []slog.Attr{slog.String("method", shortName(method))}
	if m, ok := req.(proto.Message); ok {
		attrs = appendID(attrs, m, "container_id")
		attrs = appendID(attrs, m, "exec_id")
	}
	return attrs
}

func appendID(attrs []slog.Attr, m proto.Message, field protoreflect.Name) []slog.Attr {
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(field)
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return attrs
	}
	if v := r.Get(fd).String(); v != "" {
		attrs = append(attrs, slog.String(string(field), v))
	}
	return attrs
}

// shortName turns "/grpc.AgentService/CreateContainer" into "CreateContainer".
func shortName(full string) string {
	return full[strings.LastIndexByte(full, '/')+1:]
}
