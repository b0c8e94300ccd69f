package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

func newExecGrant() *cobra.Command {
	var key, pod, namespace, sandbox, container, sealKey string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "exec-grant --key exec.key --pod NAME [-n NS | --sandbox ID] --container C [--ttl 5m] [--seal-key PUB] -- CMD ARGS...",
		Short: "Sign a one-time grant to run one command in one container",
		Long: `Print a token that lets the agent run exactly CMD ARGS... once, in container
C of the pod, until the grant expires. Run it through the unmodified control
plane:

  kubectl exec POD -c C -- cocoon-exec TOKEN

The host sees the token, so it sees the command, but cannot change it or use
it twice. --seal-key names an ephemeral owner public key (PEM) the exec's
input and output are encrypted to end to end.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if key == "" || container == "" || (pod == "") == (sandbox == "") {
				return fmt.Errorf("--key, --container and one of --pod or --sandbox are required")
			}
			if cmd.ArgsLenAtDash() != 0 {
				return fmt.Errorf("put the command after --: exec-grant ... -- CMD ARGS")
			}
			signer, err := readKey(key, execgrant.ParsePrivateKeyPEM)
			if err != nil {
				return err
			}
			target := sandbox
			if pod != "" {
				if strings.Contains(pod, "/") {
					return fmt.Errorf("--pod is the pod's name; give its namespace with -n")
				}
				target = namespace + "/" + pod
			}
			now := time.Now()
			g := execgrant.Grant{
				Version: 1, Pod: target, Container: container, Argv: argv,
				IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix(), Nonce: execgrant.NewNonce(),
			}
			if sealKey != "" {
				pub, err := readKey(sealKey, sealedlog.ParsePublicKey)
				if err != nil {
					return err
				}
				if err := g.SetSealKey(pub); err != nil {
					return err
				}
			}
			tok, err := execgrant.Sign(signer, g)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			name := pod
			if name == "" {
				name = "POD"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "valid until %s; run: kubectl exec %s -c %s -- %s TOKEN\n",
				time.Unix(g.Expires, 0).UTC().Format(time.RFC3339), name, container, execgrant.Command)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the owner's exec signing key (exec.key)")
	cmd.Flags().StringVar(&pod, "pod", "", "the pod's name")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "the pod's namespace")
	cmd.Flags().StringVar(&sandbox, "sandbox", "", "the pod's sandbox id, instead of --pod")
	cmd.Flags().StringVarP(&container, "container", "c", "", "the container's name")
	cmd.Flags().DurationVar(&ttl, "ttl", 5*time.Minute, "how long the grant is valid (at most 24h)")
	cmd.Flags().StringVar(&sealKey, "seal-key", "", "owner public key (PEM) for end-to-end encrypted exec I/O")
	return cmd
}
