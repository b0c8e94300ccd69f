// Package cli implements cocoonctl's commands.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/tools/client"
)

// globals are the options every agent command shares.
type globals struct {
	addr    string
	timeout time.Duration
}

// withAgent connects to the agent named by --addr and runs fn under --timeout.
func (g *globals) withAgent(parent context.Context, fn func(ctx context.Context, c *client.Client) error) error {
	ctx, cancel := context.WithCancel(parent)
	if g.timeout > 0 {
		ctx, cancel = context.WithTimeout(parent, g.timeout)
	}
	defer cancel()
	c, err := client.Dial(ctx, g.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}

// Execute runs cocoonctl with args and returns the process exit code.
func Execute(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		if st, ok := status.FromError(err); ok && st.Code() != 0 {
			fmt.Fprintf(stderr, "Error: %s: %s\n", st.Code(), st.Message())
		} else {
			fmt.Fprintln(stderr, "Error:", err)
		}
		var ee exitError
		if errors.As(err, &ee) {
			return int(ee)
		}
		return 1
	}
	return 0
}

// exitError carries a specific exit code out of a command.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "cocoonctl",
		Short:         "Drive a Kata-compatible guest agent; manage cocoon policies and initdata",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.addr, "addr", "unix:///run/cocoon/agent.sock",
		"agent address: unix:///path, unix://@name, tcp://host:port, vsock://CID:PORT, hvsock:///path:PORT")
	root.PersistentFlags().DurationVar(&g.timeout, "timeout", 30*time.Second, "deadline for each call (0 = none)")
	root.AddCommand(newCheck(g), newVersion(g), newCall(g))
	root.AddCommand(newPolicy(g), newInitdata())
	root.AddCommand(newConformance(g), newLayer())
	root.AddCommand(newKeys(), newLogs(), newExecGrant(), newAudit())
	root.AddCommand(newExec())
	return root
}
