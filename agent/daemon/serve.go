package daemon

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/cocoon-tee/cocoon/agent/internal/initsys"
	"github.com/cocoon-tee/cocoon/agent/internal/version"
	"github.com/cocoon-tee/cocoon/agent/server"
	"github.com/cocoon-tee/cocoon/agent/transport"
)

// ending is how serving ends besides a signal: as the guest's init, after
// DestroySandbox, the agent stops serving and powers the VM off.
type ending struct {
	guestInit bool
	stop      context.CancelFunc
	powerOff  atomic.Bool
}

// destroyed runs once DestroySandbox has answered.
func (e *ending) destroyed() {
	if e.guestInit {
		e.powerOff.Store(true)
		e.stop()
	}
}

// serve listens on addr and serves srv until ctx ends, then shuts down
// within shutdownGrace. After DestroySandbox as the guest's init it first
// waits for the host to hang up, and powers the VM off last.
func serve(ctx context.Context, addr transport.Addr, srv *server.Server, end *ending, log *slog.Logger, ready func(net.Addr), st *startup) error {
	l, err := transport.Listen(addr)
	if err != nil {
		return err
	}
	st.done("listen")
	log.InfoContext(ctx, "agent serving", "addr", addr.String(), "version", version.Version, st.attr())
	if ready != nil {
		ready(l.Addr())
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.WithoutCancel(ctx), l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.InfoContext(ctx, "agent shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if end.powerOff.Load() {
		// DestroySandbox's reply is written but may still sit in the guest's
		// socket buffers; the host hangs up once it has read it.
		if err := srv.Drain(sctx); err != nil {
			log.WarnContext(ctx, "host still connected after DestroySandbox; powering off", "error", err.Error())
		}
	}
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	err = <-errc
	if end.powerOff.Load() {
		return initsys.PowerOff()
	}
	return err
}
