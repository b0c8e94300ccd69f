package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/policy/explain"
	"github.com/cocoon-tee/cocoon/policy/input"
)

func newPolicyExplain() *cobra.Command {
	var polRef, kind, reqFile, logFile string
	var seq uint64
	cmd := &cobra.Command{
		Use:   "explain --policy FILE|builtin:NAME --request FILE [--kind REQUEST | --log FILE --seq N]",
		Short: "Say in one line why a policy denies a request",
		Long: "Evaluates a request against a policy (fresh state, as `policy eval`) and, when\n" +
			"it is denied, prints the rule and the first field or condition that made it\n" +
			"deny. For genpolicy-style policies the CreateContainerRequest is compared with\n" +
			"every policy_data.containers entry and the closest one is named.\n" +
			"The request is protojson (as `cocoonctl call` takes it) or the Kata policy\n" +
			"input. --kind is the request message or rpc name. A decision log records only\n" +
			"the input's sha256: with --log and --seq the kind comes from that entry, and the\n" +
			"request and policy must be the ones it recorded. Exit status 1 when denied.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := readPolicy(polRef)
			if err != nil {
				return err
			}
			raw, err := readFileBounded(reqFile, input.MaxDocument)
			if err != nil {
				return err
			}
			var entry *decisionlog.Entry
			if logFile != "" {
				if entry, err = findDecision(logFile, seq); err != nil {
					return err
				}
				if kind == "" {
					kind = entry.Request
				}
			}
			if kind == "" {
				return fmt.Errorf("--kind (or --log and --seq) is required: the request message name, e.g. CreateContainerRequest")
			}
			req, err := explain.ParseRequest(kind, raw)
			if err != nil {
				return err
			}
			if entry != nil {
				if err := matchEntry(entry, req, policy.Digest(text)); err != nil {
					return err
				}
			}
			p, err := policy.Load(cmd.Context(), text, polRef)
			if err != nil {
				return err
			}
			d, err := p.Explain(cmd.Context(), req.Kind, req.Input)
			w := cmd.OutOrStdout()
			switch {
			case err != nil && d.Why == "":
				return fmt.Errorf("%s: %w", req.Kind, err)
			case err != nil:
				fmt.Fprintf(w, "error (%v): %s\n", err, d.Why)
				return exitError(1)
			case d.Overridden:
				fmt.Fprintf(w, "denied, allowed by AllowRequestsFailingPolicy: %s\n", d.Why)
				return nil
			case d.Allowed:
				fmt.Fprintf(w, "%s: allowed\n", req.Kind)
				return nil
			}
			fmt.Fprintf(w, "denied: %s\n", d.Why)
			return exitError(1)
		},
	}
	cmd.Flags().StringVar(&polRef, "policy", "", "policy file, or builtin:NAME")
	cmd.Flags().StringVar(&reqFile, "request", "-", "request JSON file (- for stdin)")
	cmd.Flags().StringVar(&kind, "kind", "", "request kind, e.g. CreateContainerRequest or CreateContainer")
	cmd.Flags().StringVar(&logFile, "log", "", "decision log holding the denial")
	cmd.Flags().Uint64Var(&seq, "seq", 0, "sequence number of the decision in --log")
	_ = cmd.MarkFlagRequired("policy")
	return cmd
}

// findDecision reads the decision entry with sequence number seq.
func findDecision(path string, seq uint64) (*decisionlog.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var e decisionlog.Entry
			if jerr := json.Unmarshal(b, &e); jerr != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, jerr)
			}
			if e.Seq == seq {
				if e.Kind != decisionlog.KindDecision {
					return nil, fmt.Errorf("%s:%d: entry %d is a %q entry, not a decision", path, line, seq, e.Kind)
				}
				return &e, nil
			}
		}
		if err == io.EOF {
			return nil, fmt.Errorf("%s: no entry with seq %d", path, seq)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
}

// matchEntry checks that the request and policy are the ones the decision
// log entry recorded, so the explanation is of that decision.
func matchEntry(e *decisionlog.Entry, req explain.Request, policyDigest string) error {
	if e.Request != req.Kind {
		return fmt.Errorf("decision %d is a %s, not a %s", e.Seq, e.Request, req.Kind)
	}
	if d := req.Digest(); d != "" && d != e.InputSHA256 {
		return fmt.Errorf("the request is not the one decision %d recorded: input sha256 %s, logged %s", e.Seq, d, e.InputSHA256)
	}
	if e.PolicySHA256 != policyDigest {
		return fmt.Errorf("decision %d was made by policy %s, not %s", e.Seq, e.PolicySHA256, policyDigest)
	}
	return nil
}
