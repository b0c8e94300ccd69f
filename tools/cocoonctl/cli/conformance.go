package cli

import (
	"fmt"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/tools/conformance"
)

func newConformance(g *globals) *cobra.Command {
	var runDir, run, busybox, stateDir, runtime string
	var confidential bool
	cmd := &cobra.Command{
		Use:   "conformance",
		Short: "Run the Kata agent conformance suite against the agent at --addr",
		Long: "Drives the agent through a pod's life the way the Kata runtime does and checks every answer.\n" +
			"Container root file systems are written under --rootfs-dir/shared/containers/<id>/rootfs, so the\n" +
			"agent must see that directory as its Kata run directory. Prints one line per scenario and\n" +
			"\"N passed, M failed\"; exits 1 when a scenario failed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := conformance.Config{Addr: g.addr, KataRunDir: runDir, Busybox: busybox, Out: cmd.OutOrStdout(), Timeout: g.timeout,
				Confidential: confidential, StateDir: stateDir, Runtime: runtime}
			if g.timeout > 0 && g.timeout < conformanceMinTimeout {
				cfg.Timeout = conformanceMinTimeout
			}
			if run != "" {
				re, err := regexp.Compile(run)
				if err != nil {
					return fmt.Errorf("--run: %w", err)
				}
				cfg.Run = re
			}
			results, err := conformance.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			for _, r := range results {
				if r.Err != nil {
					return exitError(1)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&runDir, "rootfs-dir", "/run/kata-containers", "the agent's Kata run directory, as seen from here")
	cmd.Flags().StringVar(&run, "run", "", "only scenarios whose name matches this regular expression (set-up and tear-down always run)")
	cmd.Flags().StringVar(&busybox, "busybox", "/bin/busybox", "static busybox for the container root file systems")
	cmd.Flags().BoolVar(&confidential, "confidential", false, "also run the attack/ scenarios a confidential agent must refuse")
	cmd.Flags().StringVar(&runtime, "runtime", conformance.RuntimeGo, "the Kata runtime whose call order and request shapes to play: go (containerd-shim-kata-v2) or rs (runtime-rs)")
	cmd.Flags().StringVar(&stateDir, "state-dir", "/run/cocoon", "the agent's own state directory, as seen from here (the attack scenarios aim at it)")
	return cmd
}

// conformanceMinTimeout keeps the global per-call --timeout from cutting
// scenarios short: a scenario makes hundreds of calls.
const conformanceMinTimeout = 2 * time.Minute
