// Package daemon assembles the agent from its configuration and runs it until
// its context ends. RunWith goes through named phases, each a small function:
// the system (init duties when the agent is the guest's init, and the
// development log port and console), trust (initdata and attestation), the
// policy, the services (sandbox, storage, image pull, guest-wide rpcs) and
// serving, with a graceful shutdown.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/transport"
	"github.com/cocoon-tee/cocoon/internal/logctx"
)

// shutdownGrace bounds how long in-flight requests may finish after a signal.
const shutdownGrace = 5 * time.Second

// Run serves the agent API as configured until ctx is cancelled.
// ready, when not nil, is called with the listener's address once the
// agent accepts connections.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(net.Addr)) error {
	return RunWith(ctx, cfg, log, Options{Ready: ready})
}

// RunWith is Run with the daemon's injection points (see Options). Each
// phase needs the ones before it; what a phase starts is released, in
// reverse, when RunWith returns.
func RunWith(ctx context.Context, cfg config.Config, log *slog.Logger, o Options) error {
	addr, err := transport.ParseAddr(cfg.ServerAddr)
	if err != nil {
		return fmt.Errorf("server address: %w", err)
	}
	st := newStartup()
	if err := setupSystem(cfg, log); err != nil {
		return err
	}
	// The log port and debug console come up before initdata and
	// attestation (the vsock modules are loaded by now), so the operator of
	// a development image sees why those fail; they end when RunWith does.
	devCtx, stopDev := context.WithCancel(ctx)
	defer stopDev()
	log = forwardLogs(devCtx, cfg, addr, log)
	// Lines logged with a request's context name the request (method,
	// container_id, exec_id) on the console and the log port alike.
	log = slog.New(logctx.NewHandler(log.Handler()))
	startDebugConsole(devCtx, cfg, log)
	st.done("system")

	tr, err := startTrust(ctx, cfg, log, o.Attest)
	if err != nil {
		return err
	}
	defer tr.att.Close()
	st.done("trust")
	// The policy, including one from initdata, is in force before the
	// listener exists: no request is ever served unchecked.
	pol, err := startPolicy(ctx, cfg, tr, log)
	if err != nil {
		return err
	}
	defer pol.Close()
	st.done("policy")

	// DestroySandbox ends serving when the agent is the guest's init; the VM
	// is powered off once the server has answered and drained.
	ctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	end := &ending{guestInit: cfg.GuestInit, stop: stopServing}
	srv, closeServices, err := startServices(ctx, cfg, log, tr, pol, end, o.PauseBundle)
	if err != nil {
		return err
	}
	defer closeServices()
	st.done("services")
	return serve(ctx, addr, srv, end, log, o.Ready, st)
}
