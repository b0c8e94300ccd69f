// Command cocoon-agent is the confidential-container guest agent: it serves
// the Kata agent API and enforces the pod's attested policy.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/internal/initsys"
	"github.com/cocoon-tee/cocoon/agent/internal/logfwd"
)

func main() {
	container.InitIfRequested() // "cocoon-agent init": libcontainer's container init
	daemon.TuneGC(os.LookupEnv)
	// Whether the agent is the guest's init is decided here, once; the
	// rest of the agent reads it from the configuration.
	guestInit := initsys.IsInit()
	// As PID 1 nothing has mounted /proc yet (KernelCmdline does), and the
	// arguments are the kernel command line's leftovers, not our flags.
	cmdline, _ := initsys.KernelCmdline()
	args := os.Args[1:]
	if guestInit {
		args = nil
	}
	res, err := config.Load(config.Sources{Cmdline: cmdline, LookupEnv: os.LookupEnv, Args: args, ReadFile: os.ReadFile})
	var help *config.HelpError
	if errors.As(err, &help) {
		fmt.Println(help.Usage)
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cocoon-agent:", err)
		exit(2, guestInit)
	}
	res.Config.GuestInit = guestInit
	opts := &slog.HandlerOptions{Level: res.Config.LogLevel}
	if res.Config.Confidential {
		// The console is the host's as much as the log port: same filter.
		opts.ReplaceAttr = logfwd.Redact
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, opts))
	log.Info("configuration loaded", "file", res.Config.ConfigFile, "confidential", res.Config.Confidential)
	if len(res.HostIgnored) > 0 {
		// One line for all of them: the operator sees at once which host
		// settings the image overrules.
		log.Warn("confidential mode: ignoring host settings that only the image or initdata may set", "keys", res.HostIgnored)
	}
	for _, k := range res.Ignored {
		log.Debug("ignoring unknown kernel parameter", "key", k)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := daemon.Run(ctx, res.Config, log, nil); err != nil {
		log.ErrorContext(ctx, "agent failed", "error", err.Error())
		stop()
		exit(1, guestInit)
	}
}

// exit ends the agent. As the guest's init it powers the VM off instead:
// init exiting makes the kernel panic, which leaves a VM that hangs or
// reboots into the same refusal rather than stopping.
func exit(code int, guestInit bool) {
	if guestInit {
		err := initsys.PowerOff()
		fmt.Fprintln(os.Stderr, "cocoon-agent:", err)
	}
	os.Exit(code)
}
