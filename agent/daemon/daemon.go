// Package daemon assembles the agent from its configuration and runs it until
// its context ends: init duties when PID 1, the listener, the services and a
// graceful shutdown.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	attestboot "github.com/cocoon-tee/cocoon/agent/attest/boot"
	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/debugconsole"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/agent/initsys"
	"github.com/cocoon-tee/cocoon/agent/logfwd"
	"github.com/cocoon-tee/cocoon/agent/reaper"
	"github.com/cocoon-tee/cocoon/agent/rpc"
	"github.com/cocoon-tee/cocoon/agent/server"
	"github.com/cocoon-tee/cocoon/agent/transport"
	"github.com/cocoon-tee/cocoon/agent/version"
	"github.com/cocoon-tee/cocoon/policy"
)

// shutdownGrace bounds how long in-flight requests may finish after a signal.
const shutdownGrace = 5 * time.Second

// Run serves the agent API as configured until ctx is cancelled.
// ready, when not nil, is called with the listener's address once the
// agent accepts connections.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(net.Addr)) error {
	return RunWith(ctx, cfg, log, Options{Ready: ready})
}

// RunWith is Run with the daemon's injection points (see Options).
func RunWith(ctx context.Context, cfg config.Config, log *slog.Logger, o Options) error {
	ready := o.Ready
	addr, err := transport.ParseAddr(cfg.ServerAddr)
	if err != nil {
		return fmt.Errorf("server address: %w", err)
	}
	if initsys.IsInit() {
		if err := initsys.Setup(cfg.UnifiedCgroup); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		// A module that fails to load costs a feature, not the pod.
		if err := initsys.LoadModules("/"); err != nil {
			log.Warn("kernel modules not loaded", "error", err.Error())
		}
	}
	// Both come up before initdata and attestation (the vsock modules are
	// loaded by now), so the operator of a development image sees why
	// those fail; they end when RunWith does.
	devCtx, stopDev := context.WithCancel(ctx)
	defer stopDev()
	log = forwardLogs(devCtx, cfg, addr, log)
	startDebugConsole(devCtx, cfg, log)

	// The policy, including one from initdata, is in force before the
	// listener exists: no request is ever served unchecked.
	idata, err := initdata.Discover(cfg.InitdataDevice, cfg.Confidential || initsys.IsInit())
	if err != nil {
		if cfg.Confidential {
			return fmt.Errorf("initdata: %w", err)
		}
		log.Warn("initdata ignored", "error", err)
	}
	// The TEE must carry this initdata's digest before anything is served.
	// The workload API attests the decision log's head on demand; the
	// engine comes after attestation, so the head is looked up late.
	var engine atomic.Pointer[policy.Engine]
	head := func() string {
		if e := engine.Load(); e != nil {
			return e.DecisionHead()
		}
		return ""
	}
	att, err := attestboot.Start(ctx, attestboot.Options{Config: cfg, Initdata: idata, Log: log, Attest: o.Attest, DecisionHead: head})
	if err != nil {
		return fmt.Errorf("attestation: %w", err)
	}
	defer att.Close()
	pol, err := policy.Boot(ctx, policy.BootConfig{
		PolicyFile:   cfg.PolicyFile,
		DecisionLog:  cfg.DecisionLog,
		Confidential: cfg.Confidential,
		Initdata:     initdataPolicy(idata),
		Measurer:     att,
	}, log)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	defer pol.Close()
	engine.Store(pol)

	imageDriver, err := newImageDriver(cfg, idata, att, log)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	pod, stor, err := newSandbox(cfg, log, imageDriver, att.UnsealEnv)
	if err != nil {
		return err
	}
	defer destroyOnExit(ctx, pod, log)
	// DestroySandbox ends serving when the agent is the guest's init; the VM
	// is powered off once the server has answered and drained.
	ctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	var powerOff atomic.Bool
	go reaper.Run(ctx)

	system, closeSystem, err := newSystem(cfg, log, stor, pod)
	if err != nil {
		return err
	}
	defer closeSystem()

	svc := rpc.New(rpc.Deps{Log: log, Policy: pol, Sandbox: pod, System: system, AfterDestroy: func() {
		// The decision log's head is measured before a possible power-off.
		// The pod is being torn down and no caller is left to answer.
		if err := pol.MeasureDecisions(); err != nil {
			log.Error("decision log head not measured", "error", err)
		}
		if initsys.IsInit() {
			powerOff.Store(true)
			stopServing()
		}
	}})
	srv, err := server.New(server.Options{
		Agent:  svc,
		Health: rpc.Health{AgentVersion: version.Version, APIVersion: version.APIVersion},
		Gate:   pol.Gate,
		Log:    log,
	})
	if err != nil {
		return err
	}
	l, err := transport.Listen(addr)
	if err != nil {
		return err
	}
	log.Info("agent serving", "addr", addr.String(), "version", version.Version)
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
	log.Info("agent shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if powerOff.Load() {
		// DestroySandbox's reply is written but may still sit in the guest's
		// socket buffers; the host hangs up once it has read it.
		if err := srv.Drain(sctx); err != nil {
			log.Warn("host still connected after DestroySandbox; powering off", "error", err.Error())
		}
	}
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	err = <-errc
	if powerOff.Load() {
		return initsys.PowerOff()
	}
	return err
}

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
		log.Warn("log port not served", "addr", port.String(), "error", err.Error())
		return log
	}
	fwd := logfwd.New(logfwd.DefaultQueueBytes)
	log = logfwd.Attach(log, fwd, cfg.LogLevel, cfg.Confidential)
	go func() {
		if err := fwd.Serve(ctx, l, log); err != nil {
			log.Warn("log port stopped", "error", err.Error())
		}
	}()
	log.Info("log port serving", "addr", port.String(), "confidential", cfg.Confidential)
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
		log.Warn(debugconsole.ErrConfidential.Error())
		return
	case cfg.DebugConsoleVport == 0:
		log.Warn("debug console not served: it needs agent.debug_console_vport (the serial console is not supported)")
		return
	}
	port := transport.Addr{Scheme: transport.Vsock, CID: transport.AnyCID, Port: cfg.DebugConsoleVport}
	listen := func() (net.Listener, error) { return transport.Listen(port) }
	go func() {
		err := debugconsole.Start(ctx, debugconsole.Options{Confidential: cfg.Confidential, Log: log}, listen)
		if err != nil {
			log.Warn("debug console not served", "addr", port.String(), "error", err.Error())
		}
	}()
}

// initdataPolicy is initdata's policy.rego for policy.Boot, nil when there
// is none; the decision log names it by the initdata's digest.
func initdataPolicy(idata *initdata.Initdata) *policy.Text {
	if idata == nil {
		return nil
	}
	text, ok := idata.Policy()
	if !ok {
		return nil
	}
	return &policy.Text{Rego: text, Source: "initdata:" + idata.DigestHex()}
}
