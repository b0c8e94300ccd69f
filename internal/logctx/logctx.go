// Package logctx carries a request's identity (method, container_id,
// exec_id) in its context, so that every log line written while serving the
// request names it without each package passing the ids along. The server
// attaches a function that names the request; the agent's log handler
// (Handler) calls it for each record logged with that context (slog's
// *Context methods). Nothing is computed for a request that logs nothing.
package logctx

import (
	"context"
	"log/slog"
)

type key struct{}

// Attach returns ctx carrying attrs, which names the request in log
// records. attrs is called once per record, from whichever goroutine logs,
// so it must only read what was set before the request's handler ran.
func Attach(ctx context.Context, attrs func() []slog.Attr) context.Context {
	return context.WithValue(ctx, key{}, attrs)
}

// Attrs returns the request attributes ctx carries, or nil.
func Attrs(ctx context.Context) []slog.Attr {
	if ctx == nil {
		return nil
	}
	if f, ok := ctx.Value(key{}).(func() []slog.Attr); ok && f != nil {
		return f()
	}
	return nil
}

// Handler adds a record's request attributes (from the context it was
// logged with) to every record it passes to the wrapped handler.
type Handler struct{ inner slog.Handler }

// NewHandler wraps h, unless h is a Handler already (the attributes would
// be added twice).
func NewHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(Handler); ok {
		return h
	}
	return Handler{inner: h}
}

// Enabled reports whether the wrapped handler takes records at l.
func (h Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle passes r on with the request attributes added.
func (h Handler) Handle(ctx context.Context, r slog.Record) error {
	if a := Attrs(ctx); len(a) > 0 {
		r = r.Clone()
		r.AddAttrs(a...)
	}
	return h.inner.Handle(ctx, r)
}

// WithAttrs returns a Handler around the wrapped handler's WithAttrs.
func (h Handler) WithAttrs(a []slog.Attr) slog.Handler { return Handler{h.inner.WithAttrs(a)} }

// WithGroup returns a Handler around the wrapped handler's WithGroup.
func (h Handler) WithGroup(name string) slog.Handler { return Handler{h.inner.WithGroup(name)} }
