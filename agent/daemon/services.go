package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/internal/reaper"
	"github.com/cocoon-tee/cocoon/agent/internal/storage"
	"github.com/cocoon-tee/cocoon/agent/internal/version"
	"github.com/cocoon-tee/cocoon/agent/rpc"
	"github.com/cocoon-tee/cocoon/agent/server"
	"github.com/cocoon-tee/cocoon/policy"
)

// startServices builds what the rpcs act on — the image driver, the sandbox
// with its storage, the guest-wide services — and the server that gates
// every request through the policy. ctx is the serving context: the reaper
// runs until it ends. The returned function tears the pod down and releases
// the guest-wide services.
func startServices(ctx context.Context, cfg config.Config, log *slog.Logger, tr *trust, pol *policy.Engine, end *ending, pauseBundle string) (*server.Server, func(), error) {
	imageDriver, err := newImageDriver(cfg, tr.idata, tr.att, pauseBundle, log)
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	// The storage counts verified-layer incidents; GetMetrics reports them.
	layers := &storage.LayerIncidents{}
	pod, stor, err := newSandbox(cfg, log, imageDriver, tr.att.UnsealEnv, tr.obs, layers)
	if err != nil {
		return nil, nil, err
	}
	pol.SetObserver(observer{pod})
	// Encrypted exec sessions and sealed containers' log headers are
	// attested with the TEE's evidence; without an attester (no TEE)
	// sessions are not announced (cocoonctl exec refuses them) and sealed
	// logs open as NOT ATTESTED.
	pod.SetAttester(tr.att.Attester)
	go reaper.Run(ctx)
	system, closeSystem, err := newSystem(cfg, log, stor, pod, layers)
	if err != nil {
		destroyOnExit(ctx, pod, log)
		return nil, nil, err
	}
	system.MetricsSet = tr.obs.Metrics
	release := func() {
		closeSystem()
		destroyOnExit(ctx, pod, log)
	}

	svc := rpc.New(rpc.Deps{Log: log, Policy: pol, Sandbox: pod, System: system, AfterDestroy: func() {
		// The decision log's head is measured before a possible power-off.
		// The pod is being torn down and no caller is left to answer.
		if err := pol.MeasureDecisions(); err != nil {
			log.ErrorContext(ctx, "decision log head not measured", "error", err)
		}
		end.destroyed()
	}})
	srv, err := server.New(server.Options{
		Agent:  svc,
		Health: rpc.Health{AgentVersion: version.Version, APIVersion: version.APIVersion},
		Gate:   pol.Gate,
		Log:    log,
	})
	if err != nil {
		release()
		return nil, nil, err
	}
	return srv, release, nil
}
