package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

func newCheck(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Call Health.Check and print the serving status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withAgent(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Health.Check(ctx, &agentpb.CheckRequest{})
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), resp.GetStatus())
				if resp.GetStatus() != agentpb.HealthCheckResponse_SERVING {
					return exitError(1)
				}
				return nil
			})
		},
	}
}

func newVersion(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Call Health.Version and print the agent's versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withAgent(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Health.Version(ctx, &agentpb.CheckRequest{})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "agent_version: %s\ngrpc_version: %s\n", resp.GetAgentVersion(), resp.GetGrpcVersion())
				return nil
			})
		},
	}
}
