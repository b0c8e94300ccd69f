package cli

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

// ExecNoncePath is where, in policy state, the agent records each exec
// grant's nonce when it accepts the grant; audit names the grant an
// ExecProcess used from the JSON Patch op that adds it.
const ExecNoncePath = "/pstate/cocoon_exec_nonces/"

// auditKinds are the requests audit lists: what the control plane was
// allowed to make the pod do.
var auditKinds = map[string]bool{"CreateContainerRequest": true, "ExecProcessRequest": true, "SetPolicyRequest": true}

func newAudit() *cobra.Command {
	var logPath, eventPath, evidencePath string
	var partial, all bool
	cmd := &cobra.Command{
		Use:   "audit --log DIR|FILE --eventlog FILE [--evidence FILE]",
		Short: "Check a pod's decision log against its runtime measurements and list what the host was allowed to do",
		Long: `Replay the decision log's hash chain (DIR holds decisions.log and its rotated
files), check that every PolicyDecisionLogHead in the runtime measurement log
(the agent's AAEL entries) is an entry of the chain, in order, and that every
LoadPolicy/SetPolicy measurement is a policy entry of the chain; with
--evidence (TDX evidence JSON: quote and cc_eventlog), that the measurement
log replays to the quote's RTMR3. The quote's signature is not checked here:
that is the attestation service's job. Then list, in order, each
CreateContainer (container, image, argv), ExecProcess (container, exec,
argv; for an owner's exec grant the granted argv and the grant's nonce) and
SetPolicy (the new policy's sha256) the policy allowed (--all: every
decision). Entries written before the agent recorded these summaries are
listed by their input's sha256 alone. Exit status 1 when any check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if logPath == "" || eventPath == "" {
				return fmt.Errorf("--log and --eventlog are required")
			}
			files, err := decisionFiles(logPath)
			if err != nil {
				return err
			}
			chain, err := readChain(files, partial)
			if err != nil {
				return err
			}
			evb, err := readFileBounded(eventPath, attest.MaxEvidenceSize)
			if err != nil {
				return err
			}
			events, err := eventlog.Parse(evb)
			if err != nil {
				return fmt.Errorf("%s: %w", eventPath, err)
			}
			w := cmd.OutOrStdout()
			a := &audit{w: w, chain: chain, partial: partial}
			a.checkHeads(events)
			a.checkPolicies(events)
			if evidencePath != "" {
				a.checkEvidence(evidencePath, events)
			}
			a.list(all)
			if len(a.failures) > 0 {
				for _, f := range a.failures {
					fmt.Fprintln(w, "FAIL:", f)
				}
				return fmt.Errorf("audit failed: %d problems", len(a.failures))
			}
			fmt.Fprintf(w, "audit ok: %d entries, %d measured heads match\n", len(chain.entries), a.heads)
			return nil
		},
	}
	cmd.Flags().StringVar(&logPath, "log", "", "the decision log: a directory with decisions.log and its rotated files, or one file")
	cmd.Flags().StringVar(&eventPath, "eventlog", "", "the runtime measurement log (AAEL entries)")
	cmd.Flags().StringVar(&evidencePath, "evidence", "", "TDX evidence JSON whose RTMR3 the measurement log must replay to")
	cmd.Flags().BoolVar(&partial, "partial", false, "accept a log whose oldest files are gone")
	cmd.Flags().BoolVar(&all, "all", false, "list every decision, not only what changed the pod")
	return cmd
}

// decisionFiles returns a decision log's files oldest first: NAME.N ...
// NAME.1, NAME.
func decisionFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	groups := map[string][]int{} // live name → rotation numbers (0 = live)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		name, n := e.Name(), 0
		if i := strings.LastIndexByte(name, '.'); i > 0 {
			if k, err := strconv.Atoi(name[i+1:]); err == nil && k > 0 {
				name, n = name[:i], k
			}
		}
		groups[name] = append(groups[name], n)
	}
	if len(groups) != 1 {
		return nil, fmt.Errorf("%s: want the files of one decision log (NAME, NAME.1, ...), found %d names; give the live file instead", path, len(groups))
	}
	var files []string
	for name, ns := range groups {
		sort.Sort(sort.Reverse(sort.IntSlice(ns)))
		for _, n := range ns {
			f := filepath.Join(path, name)
			if n > 0 {
				f += "." + strconv.Itoa(n)
			}
			files = append(files, f)
		}
	}
	return files, nil
}

// chain is a verified decision log.
type chain struct {
	entries []decisionlog.Entry
	at      []string       // file:line of each entry
	byHash  map[string]int // entry hash → index
	result  decisionlog.Result
}

func readChain(files []string, partial bool) (*chain, error) {
	var raw [][]byte
	var srcs []decisionlog.Source
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		raw = append(raw, b)
		srcs = append(srcs, decisionlog.Source{Name: f, R: bytes.NewReader(b)})
	}
	res, err := decisionlog.Verify(srcs)
	if err != nil {
		return nil, fmt.Errorf("decision log: %w", err)
	}
	if (res.Continued || len(res.Resets) > 0) && !partial {
		return nil, fmt.Errorf("decision log is truncated: %s %s (--partial accepts this)", res.Missing, strings.Join(res.Resets, "; "))
	}
	c := &chain{byHash: map[string]int{}, result: res}
	for i, b := range raw {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 16<<20)
		for n := 1; sc.Scan(); n++ {
			var e decisionlog.Entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", files[i], n, err) // Verify read it; cannot happen
			}
			c.byHash[e.Hash] = len(c.entries)
			c.entries = append(c.entries, e)
			c.at = append(c.at, fmt.Sprintf("%s:%d", filepath.Base(files[i]), n))
		}
	}
	return c, nil
}

type audit struct {
	w        io.Writer
	chain    *chain
	partial  bool
	heads    int
	failures []string
}

func (a *audit) fail(format string, args ...any) {
	a.failures = append(a.failures, fmt.Sprintf(format, args...))
}

// checkHeads: every measured head is an entry of the chain, and the heads
// move forward. A head the chain does not contain means an entry was
// edited, removed or reordered after it was measured, or the log given
// is not this pod's.
func (a *audit) checkHeads(events []eventlog.Event) {
	last, lastEvent := -1, 0
	for i, ev := range events {
		if ev.Domain != eventlog.DomainCocoon || ev.Operation != eventlog.OpDecisionsHead {
			continue
		}
		head, ok := strings.CutPrefix(ev.Content, "sha256:")
		if !ok {
			a.fail("measurement %d: PolicyDecisionLogHead %q is not sha256:<hex>", i, ev.Content)
			continue
		}
		idx, found := a.chain.byHash[head]
		switch {
		case !found && a.partial && last < 0:
			fmt.Fprintf(a.w, "note: measured head %s (measurement %d) is before the files given\n", short(head), i)
		case !found:
			a.fail("measured head %s (measurement %d) is not an entry of the decision log: an entry was edited, removed or reordered, or this is another pod's log", short(head), i)
		case idx < last:
			a.fail("measured head %s (measurement %d) is entry seq %d, before the head measured earlier (measurement %d, seq %d): the log was reordered",
				short(head), i, a.chain.entries[idx].Seq, lastEvent, a.chain.entries[last].Seq)
		default:
			last, lastEvent = idx, i
			a.heads++
		}
	}
	switch {
	case a.heads == 0:
		fmt.Fprintln(a.w, "warning: no measured head matches the log: nothing anchors it, so its newest entries could have been dropped")
	case last < len(a.chain.entries)-1:
		fmt.Fprintf(a.w, "note: %d entries after the last measured head (seq %d) are not anchored by a measurement; compare the last hash %s with a head attested later\n",
			len(a.chain.entries)-1-last, a.chain.entries[last].Seq, short(a.chain.result.LastHash))
	}
}

// checkPolicies: every policy the agent measured (LoadPolicy, SetPolicy)
// was installed, in that order, according to the decision log.
func (a *audit) checkPolicies(events []eventlog.Event) {
	next := 0
	for i, ev := range events {
		if ev.Domain != eventlog.DomainCocoon || (ev.Operation != eventlog.OpLoadPolicy && ev.Operation != eventlog.OpSetPolicy) {
			continue
		}
		digest := strings.TrimPrefix(ev.Content, "sha256:")
		j := next
		for j < len(a.chain.entries) && (a.chain.entries[j].Kind != decisionlog.KindPolicy || a.chain.entries[j].PolicySHA256 != digest) {
			j++
		}
		switch {
		case j < len(a.chain.entries):
			next = j + 1
		case a.partial && next == 0:
			fmt.Fprintf(a.w, "note: measured %s %s (measurement %d) is before the files given\n", ev.Operation, short(digest), i)
		default:
			a.fail("measured %s %s (measurement %d) has no policy entry in the decision log after seq %d", ev.Operation, short(digest), i, a.seqAt(next-1))
		}
	}
}

func (a *audit) seqAt(i int) uint64 {
	if i < 0 {
		return 0
	}
	return a.chain.entries[i].Seq
}

// checkEvidence replays the measurement log against TDX evidence.
func (a *audit) checkEvidence(path string, events []eventlog.Event) {
	b, err := readFileBounded(path, attest.MaxEvidenceSize)
	if err != nil {
		a.fail("evidence: %v", err)
		return
	}
	tdx, terr := attest.ParseTDXEvidence(b)
	if terr != nil {
		if _, err := attest.ParseSNPEvidence(b); err == nil {
			fmt.Fprintln(a.w, "note: SNP evidence has no runtime measurement register; check the last head against one attested through the workload API (/cocoon/decisions/head)")
			return
		}
		a.fail("evidence is not TDX evidence (%v) nor SNP evidence", terr)
		return
	}
	rtmrs := tdx.Body.GetRtmrs()
	if len(rtmrs) <= eventlog.RTMRIndex {
		a.fail("evidence: the quote has %d RTMRs", len(rtmrs))
		return
	}
	var ours []eventlog.Event
	for _, e := range events {
		if e.Register == eventlog.MeasurementRegister {
			ours = append(ours, e)
		}
	}
	got, want := eventlog.Replay(ours), rtmrs[eventlog.RTMRIndex]
	if !bytes.Equal(got, want) {
		a.fail("the measurement log replays to RTMR%d %s, the quote says %s: the log is not the one the TEE measured", eventlog.RTMRIndex, hex.EncodeToString(got), hex.EncodeToString(want))
		return
	}
	fmt.Fprintf(a.w, "RTMR%d matches the measurement log (%d events); the quote's signature is for the verifier to check\n", eventlog.RTMRIndex, len(ours))
}

// list prints the decisions, oldest first.
func (a *audit) list(all bool) {
	es := a.chain.entries
	for i, e := range es {
		switch {
		case e.Kind == decisionlog.KindPolicy:
			fmt.Fprintf(a.w, "seq %d %s policy installed sha256:%s (%s)\n", e.Seq, printable(e.Time), short(e.PolicySHA256), printable(e.Source))
		case e.Kind == decisionlog.KindDecision && (all || (auditKinds[e.Request] && e.Allowed != nil && *e.Allowed)):
			verdict := "allowed"
			if e.Allowed == nil || !*e.Allowed {
				verdict = "denied"
			}
			line := fmt.Sprintf("seq %d %s %s %s input sha256:%s", e.Seq, printable(e.Time), printable(strings.TrimSuffix(e.Request, "Request")), verdict, short(e.InputSHA256))
			line += describe(e.Summary)
			n := grantNonce(e.Ops)
			if n == "" && e.Summary != nil {
				n = e.Summary.GrantNonce
			}
			if n != "" {
				line += " exec grant nonce " + printable(n)
			}
			if len(e.Ops) > 0 && !bytes.Equal(e.Ops, []byte("null")) && !bytes.Equal(e.Ops, []byte("[]")) {
				line += " " + outcome(es[i+1:], e)
			}
			fmt.Fprintln(a.w, line)
		}
	}
}

// describe says what a decision's summary records the request would
// have the pod do ("" for an entry without one, as written before
// summaries existed). Every host-sent value is quoted (%q), so that no
// byte of it reaches the reader's terminal as a control sequence.
func describe(s *decisionlog.Summary) string {
	if s == nil {
		return ""
	}
	var b strings.Builder
	quoted := func(label, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s %q", label, v)
		}
	}
	quoted("container", s.ContainerID)
	quoted("exec", s.ExecID)
	quoted("type", s.ContainerType)
	quoted("image", s.Image)
	if s.ImageName != s.Image {
		quoted("image-name", s.ImageName)
	}
	if len(s.Args) > 0 {
		fmt.Fprintf(&b, " args %q", s.Args)
	}
	if s.NewPolicySHA256 != "" {
		fmt.Fprintf(&b, " new policy sha256:%s", short(s.NewPolicySHA256))
	}
	if s.Truncated {
		b.WriteString(" (summary cut to its bounds)")
	}
	return b.String()
}

// outcome finds the commit entry of a decision that changed state.
func outcome(after []decisionlog.Entry, d decisionlog.Entry) string {
	for _, c := range after {
		if c.Kind == decisionlog.KindCommit && c.Request == d.Request && c.InputSHA256 == d.InputSHA256 && c.Committed != nil {
			if *c.Committed {
				return "(done)"
			}
			return "(failed, no state kept)"
		}
	}
	return "(outcome not in the log)"
}

// grantNonce returns the nonce an ExecProcess decision records.
func grantNonce(ops json.RawMessage) string {
	var list []struct {
		Op   string `json:"op"`
		Path string `json:"path"`
	}
	if json.Unmarshal(ops, &list) != nil {
		return ""
	}
	for _, o := range list {
		if n, ok := strings.CutPrefix(o.Path, ExecNoncePath); ok && o.Op == "add" {
			return n
		}
	}
	return ""
}

func short(h string) string {
	if len(h) > 16 {
		h = h[:16]
	}
	return printable(h)
}

// printable is s, or s quoted when it holds anything but printable
// characters: the log is the host's to forge, and its text must not reach
// the auditor's terminal as control sequences.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
