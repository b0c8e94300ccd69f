// Command cocoon-agent is the confidential-container guest agent: it serves
// the Kata agent API and enforces the pod's attested policy.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/initsys"
)

func main() {
	container.InitIfRequested() // "cocoon-agent init": libcontainer's container init
	// As PID 1 nothing has mounted /proc yet (KernelCmdline does), and the
	// arguments are the kernel command line's leftovers, not our flags.
	cmdline, _ := initsys.KernelCmdline()
	args := os.Args[1:]
	if initsys.IsInit() {
		args = nil
	}
	res, err := config.Load(config.Sources{Cmdline: cmdline, LookupEnv: os.LookupEnv, Args: args, ReadFile: os.ReadFile})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cocoon-agent:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: res.Config.LogLevel}))
	for _, k := range res.Ignored {
		log.Debug("ignoring unknown kernel parameter", "key", k)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := daemon.Run(ctx, res.Config, log, nil); err != nil {
		log.Error("agent failed", "error", err.Error())
		os.Exit(1)
	}
}
