package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

func newLogs() *cobra.Command {
	cmd := &cobra.Command{Use: "logs", Short: "Read container output sealed to the pod owner"}
	cmd.AddCommand(newLogsOpen())
	return cmd
}

// markPrefix starts every line logs open adds to the plaintext.
const markPrefix = "### cocoon-logs: "

// maxInputLine bounds a line of kubectl output; longer ones cannot be
// sealed lines and are skipped as unsealed.
const maxInputLine = 1 << 20

func newLogsOpen() *cobra.Command {
	var key, evidenceOut string
	var opt sealedlog.OpenerOptions
	cmd := &cobra.Command{
		Use:   "open --key seal.key [FILE|-]",
		Short: "Decrypt `kubectl logs` output of sealed containers",
		Long: `Decrypt the output of kubectl logs (with or without --timestamps; stdin when
FILE is - or absent) with the owner's seal.key and print the plaintext. Lines
starting with "` + markPrefix + `" mark what the input does not faithfully
carry: records missing, arriving late (reordered) or twice (replayed), lines
that do not authenticate, and lines that were not sealed at all (their
content is not shown: the host could have written them). The exit status is
1 when records are missing, reordered, replayed or forged.

Each stream is marked "attested (TEE, report data checked)" when the agent's
TEE evidence in the input binds its header, or "NOT ATTESTED": anyone holding
the owner's public key can make a stream, only the agent can attest one. The
evidence's report data is checked, not its signature or TCB: --evidence-out
writes each attestation's evidence, with its TEE and streams, to a file for an
attestation service. With --require-evidence, streams that are not attested
are not shown and count as integrity problems.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return fmt.Errorf("--key is required")
			}
			priv, err := readKey(key, sealedlog.ParsePrivateKeyPEM)
			if err != nil {
				return err
			}
			in := cmd.InOrStdin()
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			o, err := sealedlog.NewOpenerWith(priv, opt)
			if err != nil {
				return err
			}
			p := &logPrinter{w: bufio.NewWriter(cmd.OutOrStdout()), atLineStart: true, evidence: map[string]int{}}
			if err := eachLine(in, func(l []byte, tooLong bool) {
				if tooLong {
					p.print(sealedlog.Event{Kind: sealedlog.Unsealed})
					return
				}
				for _, e := range o.Line(l) {
					p.print(e)
				}
			}); err != nil {
				return err
			}
			for _, e := range o.End() {
				p.print(e)
			}
			p.flushUnsealed()
			if err := p.w.Flush(); err != nil {
				return err
			}
			// Written whatever the integrity problems: the evidence of the
			// attested streams is worth checking all the same.
			if evidenceOut != "" {
				if err := writeEvidence(evidenceOut, p.attested); err != nil {
					return fmt.Errorf("--evidence-out: %w", err)
				}
			}
			if p.problems > 0 {
				return fmt.Errorf("%d integrity problems (marked in the output)", p.problems)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the owner's private log key (seal.key)")
	cmd.Flags().BoolVar(&opt.RequireEvidence, "require-evidence", false, "show only streams the agent's TEE evidence attests")
	cmd.Flags().StringVar(&evidenceOut, "evidence-out", "", "write the evidence of every attested stream set (Trustee's JSON shape, with its TEE and streams) to this file, for an attestation service")
	cmd.Flags().BoolVar(&opt.AllowSample, "insecure-sample-evidence", false, "count the sample attester's evidence (no TEE, authenticates nothing) for --require-evidence")
	return cmd
}

// eachLine calls fn for every line of r; a line longer than maxInputLine
// is reported once as tooLong and skipped.
func eachLine(r io.Reader, fn func(l []byte, tooLong bool)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	skipping := false
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !skipping {
				long = append(long, chunk...)
				if len(long) > maxInputLine {
					skipping, long = true, nil
					fn(nil, true)
				}
			}
			continue
		case err != nil && err != io.EOF:
			return err
		}
		if !skipping && (len(chunk) > 0 || len(long) > 0) {
			fn(append(long, chunk...), false)
		}
		long, skipping = long[:0], false
		if err == io.EOF {
			return nil
		}
	}
}

// logPrinter writes plaintext and marks; marks always stand on their own
// line.
type logPrinter struct {
	w           *bufio.Writer
	atLineStart bool
	unsealed    int // a run of unsealed lines not yet reported
	problems    int
	// attested collects the attestations seen, for --evidence-out;
	// evidence indexes it by TEE and evidence.
	attested []streamEvidence
	evidence map[string]int
}

// logsEvidence is the file --evidence-out writes.
type logsEvidence struct {
	Attestations []streamEvidence `json:"attestations"`
}

// streamEvidence is one attestation line's evidence and the streams it
// attests. Streams sealed together are attested by one line, so identical
// evidence means one attestation of several streams.
type streamEvidence struct {
	Tee      string          `json:"tee"`
	Streams  []string        `json:"streams"`
	Evidence json.RawMessage `json:"evidence"`
}

// addEvidence files an Attested event under its attestation.
func (p *logPrinter) addEvidence(e sealedlog.Event) {
	k := e.Tee + "\x00" + string(e.Evidence)
	i, ok := p.evidence[k]
	if !ok {
		i = len(p.attested)
		p.evidence[k] = i
		p.attested = append(p.attested, streamEvidence{Tee: e.Tee, Evidence: e.Evidence})
	}
	p.attested[i].Streams = append(p.attested[i].Streams, e.Stream)
}

func writeEvidence(path string, attested []streamEvidence) error {
	doc := logsEvidence{Attestations: attested}
	if doc.Attestations == nil {
		doc.Attestations = []streamEvidence{}
	}
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(js, '\n'), 0o644)
}

func (p *logPrinter) mark(format string, a ...any) {
	if !p.atLineStart {
		p.w.WriteByte('\n')
	}
	fmt.Fprintf(p.w, markPrefix+format+"\n", a...)
	p.atLineStart = true
}

func (p *logPrinter) flushUnsealed() {
	if p.unsealed > 0 {
		p.mark("%d unsealed line(s) not shown (written outside a sealed stream)", p.unsealed)
		p.unsealed = 0
	}
}

func (p *logPrinter) print(e sealedlog.Event) {
	if e.Kind == sealedlog.Unsealed {
		p.unsealed++
		return
	}
	p.flushUnsealed()
	switch e.Kind {
	case sealedlog.Data:
		p.w.Write(e.Data)
		p.atLineStart = e.Data[len(e.Data)-1] == '\n'
	case sealedlog.Late:
		p.problems++
		p.mark("%s: record %d arrives late (reordered); its place was marked missing", e.Stream, e.First)
		p.w.Write(e.Data)
		p.atLineStart = e.Data[len(e.Data)-1] == '\n'
		p.mark("%s: end of late record %d", e.Stream, e.First)
	case sealedlog.NewStream:
		p.mark("%s: stream starts", e.Stream)
	case sealedlog.StartsLate:
		p.mark("%s: the input starts after record %d (log rotated, --tail or --since, or dropped)", e.Stream, e.Last)
	case sealedlog.Missing:
		p.problems++
		p.mark("%s: MISSING records %d to %d", e.Stream, e.First, e.Last)
	case sealedlog.Replayed:
		p.problems++
		p.mark("%s: REPLAYED record %d (shown once)", e.Stream, e.First)
	case sealedlog.Closed:
		p.mark("%s: stream ends (record %d)", e.Stream, e.First)
	case sealedlog.NotClosed:
		p.mark("%s: no end of stream after record %d (still running, or the rest was cut)", e.Stream, e.First-1)
	case sealedlog.Rejected:
		p.problems++
		p.mark("%s: REJECTED sealed line: %s", e.Stream, e.Reason)
	case sealedlog.Attested:
		p.addEvidence(e)
		if e.Tee == attest.TeeSample {
			p.mark("%s: attested by the SAMPLE attester (no TEE): it authenticates nothing", e.Stream)
			return
		}
		p.mark("%s: attested (%s, report data checked)", e.Stream, e.Tee)
	case sealedlog.NotAttested:
		p.mark("%s: NOT ATTESTED (no evidence from the agent binds this stream; anyone with the owner's public key could have made it)", e.Stream)
	}
}
