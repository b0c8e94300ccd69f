package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

func newPolicy(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Evaluate, inspect and install agent policies; verify decision logs",
	}
	cmd.AddCommand(newPolicyEval(), newPolicyVerifyLog(), newPolicyBuiltin(), newPolicySet(g), newPolicyGenerate())
	cmd.AddCommand(newPolicyExplain())
	return cmd
}

// readPolicy reads a policy file, or a shipped one as "builtin:<name>".
func readPolicy(ref string) (string, error) {
	if name, ok := strings.CutPrefix(ref, "builtin:"); ok {
		return policy.Builtin(name)
	}
	b, err := readFileBounded(ref, policy.MaxPolicySize)
	return string(b), err
}

func readFileBounded(path string, limit int64) ([]byte, error) {
	if path == "-" {
		return readBounded(os.Stdin, limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := readBounded(f, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func newPolicyEval() *cobra.Command {
	var polRef, kind, in string
	cmd := &cobra.Command{
		Use:   "eval --policy FILE|builtin:NAME --kind REQUEST --input FILE",
		Short: "Evaluate one request offline with the agent's engine",
		Long: "Evaluates a request (JSON in the Kata policy-input shape, e.g. from a Kata\n" +
			"test case or a decision log investigation) against a policy, with fresh\n" +
			"state. --kind is the request message name (CreateContainerRequest) or the\n" +
			"rpc name (CreateContainer). Prints the decision; exit status 1 when denied.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := readPolicy(polRef)
			if err != nil {
				return err
			}
			p, err := policy.Load(cmd.Context(), text, polRef)
			if err != nil {
				return err
			}
			if n, err := input.RequestName(kind); err == nil {
				kind = n
			}
			raw, err := readFileBounded(in, input.MaxDocument)
			if err != nil {
				return err
			}
			doc, err := evalInput(kind, raw)
			if err != nil {
				return err
			}
			d, err := p.Explain(cmd.Context(), kind, doc)
			if err != nil {
				return fmt.Errorf("%s: %w", kind, err)
			}
			out := map[string]any{"request": kind, "allowed": d.Allowed, "prints": d.Prints, "policy_sha256": p.Digest()}
			if d.Ops != nil {
				out["ops"] = d.Ops
			}
			if d.Overridden {
				out["overridden_by"] = "AllowRequestsFailingPolicy"
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(out); err != nil {
				return err
			}
			if !d.Allowed {
				return exitError(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&polRef, "policy", "", "policy file, or builtin:NAME")
	cmd.Flags().StringVar(&kind, "kind", "", "request kind, e.g. CreateContainerRequest")
	cmd.Flags().StringVar(&in, "input", "-", "request JSON file (- for stdin)")
	_ = cmd.MarkFlagRequired("policy")
	_ = cmd.MarkFlagRequired("kind")
	return cmd
}

// evalInput normalises a request document to exactly what the agent would
// evaluate: decoded into the request message and encoded again, so missing
// fields appear as the agent sends them. CopyFile inputs are already in
// their policy form.
func evalInput(kind string, raw []byte) (map[string]any, error) {
	if kind == "CopyFileRequest" {
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		return input.CopyFileDefaults(doc), nil
	}
	m, err := input.NewRequest(kind)
	if err != nil {
		return nil, err
	}
	if err := input.Decode(raw, m); err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	return input.Encode(m), nil
}

func newPolicyVerifyLog() *cobra.Command {
	var partial bool
	cmd := &cobra.Command{
		Use:   "verify-log FILE...",
		Short: "Verify a decision log's hash chain (rotated files oldest first)",
		Long: `Verify a decision log's hash chain. Give the rotated files oldest first,
then the live file. The chain must start at genesis: files whose first entry
continues a file that is not given, or that restart the chain after a damaged
entry, are truncated history and fail unless --partial. A file that ends in the
middle of an entry always fails. Compare the last hash with the head the agent
measured or attested.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var srcs []decisionlog.Source
			for _, a := range args {
				f, err := os.Open(a)
				if err != nil {
					return err
				}
				defer f.Close()
				srcs = append(srcs, decisionlog.Source{Name: a, R: f})
			}
			res, err := decisionlog.Verify(srcs)
			if err != nil {
				return err
			}
			var gaps []string
			if res.Missing != "" {
				gaps = append(gaps, res.Missing)
			}
			for _, r := range res.Resets {
				gaps = append(gaps, "the chain restarts, history before it is not covered: "+r)
			}
			if len(gaps) > 0 && !partial {
				return fmt.Errorf("truncated: %s (--partial accepts this)", strings.Join(gaps, "; "))
			}
			w := cmd.OutOrStdout()
			for _, g := range gaps {
				fmt.Fprintln(w, "truncated:", g)
			}
			for _, r := range res.Recovered {
				fmt.Fprintln(w, "recovered:", r)
			}
			verdict := "ok"
			if len(gaps) > 0 {
				verdict = "ok (partial)"
			}
			fmt.Fprintf(w, "%s: %d entries from seq %d, last hash %s\n", verdict, res.Entries, res.FirstSeq, res.LastHash)
			return nil
		},
	}
	cmd.Flags().BoolVar(&partial, "partial", false, "accept files that do not reach back to the chain's start")
	return cmd
}

func newPolicyBuiltin() *cobra.Command {
	return &cobra.Command{
		Use:   "builtin [NAME]",
		Short: "List the policies shipped with the agent, or print one",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				for _, n := range policy.BuiltinNames() {
					fmt.Fprintln(cmd.OutOrStdout(), n)
				}
				return nil
			}
			text, err := policy.Builtin(args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), text)
			return err
		},
	}
}

func newPolicySet(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "set FILE|builtin:NAME",
		Short: "Replace the agent's policy with SetPolicy (if the current policy allows it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := readPolicy(args[0])
			if err != nil {
				return err
			}
			return g.withAgent(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				if _, err := c.Agent.SetPolicy(ctx, &agentpb.SetPolicyRequest{Policy: text}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "policy %s installed\n", policy.Digest(text))
				return nil
			})
		},
	}
}

// maxInitdataInput bounds files read into initdata.
const maxInitdataInput = initdata.MaxTOML
