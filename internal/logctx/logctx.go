// Package logctx carries a request's identity (method, container_id,
// exec_id) in its context, so that every log line written while serving the
// request names it without each package passing the ids along. The server
// attaches an empty set before the handler runs and fills it once the
// request is decoded; the agent's log handler (Handler) adds the set to each
// record logged with that context (slog's *Context methods).
package logctx

import (
	"context"
	"log/slog"
	"sync/atomic"
)

type key struct{}

// fields is written once, by the goroutine that decodes the request, and only
// read afterwards; the atomic makes reads from goroutines the handler starts
// safe whatever their order.
type fields struct{ attrs atomic.Pointer[[]slog.Attr] }

// Attach returns ctx with an empty, settable set of request attributes.
func Attach(ctx context.Context) context.Context {
	return context.WithValue(ctx, key{}, &fields{})
}

// Set records attrs as the request's attributes in a context made by
// Attach, replacing any set before. Without Attach it does nothing.
func Set(ctx context.Context, attrs ...slog.Attr) {
	if f, ok := ctx.Value(key{}).(*fields); ok {
		a := append([]slog.Attr(nil), attrs...)
		f.attrs.Store(&a)
	}
}

// Attrs returns the request attributes ctx carries, or nil.
func Attrs(ctx context.Context) []slog.Attr {
	if ctx == nil {
		return nil
	}
	f, ok := ctx.Value(key{}).(*fields)
	if !ok {
		return nil
	}
	if a := f.attrs.Load(); a != nil {
		return *a
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
