package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

func newCheck(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Call Health.Check and print the serving status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := g.callContext(cmd.Context())
			defer cancel()
			c, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.Health.Check(ctx, &agentpb.CheckRequest{})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.GetStatus())
			if resp.GetStatus() != agentpb.HealthCheckResponse_SERVING {
				return exitError(1)
			}
			return nil
		},
	}
}

func newVersion(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Call Health.Version and print the agent's versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := g.callContext(cmd.Context())
			defer cancel()
			c, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.Health.Version(ctx, &agentpb.CheckRequest{})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "agent_version: %s\ngrpc_version: %s\n", resp.GetAgentVersion(), resp.GetGrpcVersion())
			return nil
		},
	}
}
