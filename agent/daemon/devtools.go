package daemon

import (
	"context"
	"log/slog"
	"net"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/internal/debugconsole"
	"github.com/cocoon-tee/cocoon/agent/internal/logfwd"
	"github.com/cocoon-tee/cocoon/agent/transport"
)

// forwardLogs serves the log port (agent.log_vport) and returns the logger
// that also writes there. Only an agent served over vsock has one: the
// runtime reads it on the same vsock as the agent port; unix and tcp agents
// (tests, peer pods) have nobody to read it. A port that cannot be opened
// costs the stream, not the pod.
func forwardLogs(ctx context.Context, cfg config.Config, agent transport.Addr, log *slog.Logger) *slog.Logger {
	if cfg.LogVport == 0 || agent.Scheme != transport.Vsock {
		return log
	}
	port := transport.Addr{Scheme: transport.Vsock, CID: transport.AnyCID, Port: cfg.LogVport}
	l, err := transport.Listen(port)
	if err != nil {
		log.WarnContext(ctx, "log port not served", "addr", port.String(), "error", err.Error())
		return log
	}
	fwd := logfwd.New(logfwd.DefaultQueueBytes)
	log = logfwd.Attach(log, fwd, cfg.LogLevel, cfg.Confidential)
	go func() {
		if err := fwd.Serve(ctx, l, log); err != nil {
			log.WarnContext(ctx, "log port stopped", "error", err.Error())
		}
	}()
	log.InfoContext(ctx, "log port serving", "addr", port.String(), "confidential", cfg.Confidential)
	return log
}

// startDebugConsole serves the debug console when asked for. Confidential
// mode refuses it here and again in the package: one line, nothing bound.
// (A host asking on the command line was already overruled by config,
// whose warning names debug_console.)
func startDebugConsole(ctx context.Context, cfg config.Config, log *slog.Logger) {
	switch {
	case !cfg.DebugConsole:
		return
	case cfg.Confidential:
		log.WarnContext(ctx, debugconsole.ErrConfidential.Error())
		return
	case cfg.DebugConsoleVport == 0:
		log.WarnContext(ctx, "debug console not served: it needs agent.debug_console_vport (the serial console is not supported)")
		return
	}
	port := transport.Addr{Scheme: transport.Vsock, CID: transport.AnyCID, Port: cfg.DebugConsoleVport}
	listen := func() (net.Listener, error) { return transport.Listen(port) }
	go func() {
		err := debugconsole.Start(ctx, debugconsole.Options{Confidential: cfg.Confidential, Log: log}, listen)
		if err != nil {
			log.WarnContext(ctx, "debug console not served", "addr", port.String(), "error", err.Error())
		}
	}()
}
