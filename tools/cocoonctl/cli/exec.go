package cli

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

// execMarkPrefix starts every line cocoonctl exec adds to the output.
const execMarkPrefix = "### cocoon-exec: "

func newExec() *cobra.Command {
	var key, pod, namespace, container, kubectl, evidenceOut string
	var kubectlArgs []string
	var allowSample bool
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "exec --key exec.key --pod NAME [-n NS] -c C [--ttl 5m] -- CMD ARGS...",
		Short: "Run a granted command with its input and output encrypted end to end",
		Long: `Sign a one-time grant for CMD ARGS... that carries a fresh ephemeral key, run

  kubectl exec -i -n NS NAME -c C -- cocoon-exec TOKEN

as a child, and relay: the command's output arrives sealed to the ephemeral
key and is printed in the clear here; this tool's stdin is sealed to the
key the agent announces in its first output line and sent through kubectl.
The host relays only ciphertext. Any output or input the host changes,
drops, replays or reorders ends the session with an error. No terminal
(kubectl exec -t) is used: interactive programs see a pipe.

The agent first announces the session with TEE evidence whose report data
binds the grant's nonce and the session's sealed streams; nothing is sent
or shown before it verifies, so a host answering cocoon-exec itself is
refused. Checked here: the evidence's format and report data. Not checked
here: the quote's or report's signature, certificates and TCB (save the
evidence with --evidence-out for an attestation service). Sample evidence
(a development agent without a TEE) authenticates nothing and is refused
unless --insecure-sample-evidence.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if key == "" || container == "" || pod == "" {
				return fmt.Errorf("--key, --pod and --container are required")
			}
			if cmd.ArgsLenAtDash() != 0 {
				return fmt.Errorf("put the command after --: exec ... -- CMD ARGS")
			}
			signer, err := readKey(key, execgrant.ParsePrivateKeyPEM)
			if err != nil {
				return err
			}
			eph, err := ecdh.X25519().GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			now, nonce := time.Now(), execgrant.NewNonce()
			g := execgrant.Grant{
				Version: 1, Pod: namespace + "/" + pod, Container: container, Argv: argv,
				IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix(), Nonce: nonce,
			}
			if err := g.SetSealKey(eph.PublicKey()); err != nil {
				return err
			}
			tok, err := execgrant.Sign(signer, g)
			if err != nil {
				return err
			}
			args := append(append([]string{}, kubectlArgs...), "exec", "-i", "-n", namespace, pod, "-c", container, "--", execgrant.Command, tok)
			child := exec.CommandContext(cmd.Context(), kubectl, args...)
			o := sessionOptions{key: eph, nonce: nonce, allowSample: allowSample, evidenceOut: evidenceOut}
			return runExecChild(child, o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the owner's exec signing key (exec.key)")
	cmd.Flags().StringVar(&pod, "pod", "", "the pod's name")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "the pod's namespace")
	cmd.Flags().StringVarP(&container, "container", "c", "", "the container's name")
	cmd.Flags().DurationVar(&ttl, "ttl", 5*time.Minute, "how long the grant is valid (at most 24h)")
	cmd.Flags().StringVar(&kubectl, "kubectl", "kubectl", "the kubectl binary")
	cmd.Flags().BoolVar(&allowSample, "insecure-sample-evidence", false, "accept a session announced with the sample attester's evidence (a development agent without a TEE): the agent is then not authenticated")
	cmd.Flags().StringVar(&evidenceOut, "evidence-out", "", "write the agent's evidence (Trustee's JSON shape) to this file, for an attestation service")
	cmd.Flags().StringArrayVar(&kubectlArgs, "kubectl-arg", nil, "an argument for kubectl before exec (e.g. --context=prod); repeatable")
	return cmd
}

// runExecChild runs child (kubectl exec -i ...) and relays a session
// through its stdio.
func runExecChild(child *exec.Cmd, o sessionOptions, in io.Reader, out, errOut io.Writer) error {
	cin, err := child.StdinPipe()
	if err != nil {
		return err
	}
	cout, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	cerr, err := child.StderrPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return err
	}
	serr := execSession(o, in, out, errOut, cin, cout, cerr)
	if serr != nil && child.Process != nil {
		_ = child.Process.Kill() // the session is over; do not keep relaying
	}
	werr := child.Wait()
	if serr != nil {
		return serr
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		return exitError(ee.ExitCode()) // kubectl passes the command's status on
	}
	return werr
}

// sessionOptions is what a session is checked against.
type sessionOptions struct {
	key         *ecdh.PrivateKey // the grant's ephemeral key
	nonce       string           // the grant's nonce
	allowSample bool
	evidenceOut string
}

// outLine is one line of the child's output.
type outLine struct {
	b      []byte
	stderr bool
	err    error // set on the last item of a pipe
}

// maxHeldStderr bounds the sealed stderr held until the session's
// announcement is read.
const maxHeldStderr = 4 << 20

// execSession relays one encrypted exec. The first line on the child's
// stdout must announce the session with TEE evidence binding the grant's
// nonce and the session's sealed streams; nothing is typed or shown before
// it verified, and every later sealed stream must be one it names. Then
// lines from the child's stdout and stderr are opened and printed; once
// the agent's key is known, in is sealed to it and written to the child's
// stdin (closed after the final record). It returns when both output
// pipes end, or at the first error.
func execSession(o sessionOptions, in io.Reader, out, errOut io.Writer, cin io.WriteCloser, cout, cerr io.Reader) error {
	owner, err := sealedlog.NewExecOwner(o.key)
	if err != nil {
		return err
	}
	s := &session{o: o, owner: owner, out: out, errOut: errOut}
	lines := make(chan outLine)
	stop := make(chan struct{})
	defer close(stop)
	for _, p := range []struct {
		r      io.Reader
		stderr bool
	}{{cout, false}, {cerr, true}} {
		go readLines(p.r, p.stderr, lines, stop)
	}
	stdinDone := make(chan error, 1)
	started, open := false, 2
	for open > 0 {
		var l outLine
		select {
		case l = <-lines:
		case err := <-stdinDone:
			stdinDone = nil
			if err != nil {
				return err
			}
			continue
		}
		if l.err != nil {
			open--
			if l.err != io.EOF {
				return fmt.Errorf("reading kubectl: %w", l.err)
			}
			continue
		}
		if err := s.line(l); err != nil {
			return err
		}
		if !started && owner.AgentKey() != nil {
			started = true
			sealer, err := sealedlog.NewStdinSealer(owner.AgentKey())
			if err != nil {
				return err
			}
			go func() { stdinDone <- pumpStdin(sealer, in, cin) }()
		}
	}
	if s.unsealed > 0 {
		fmt.Fprintf(errOut, "%s%d unsealed line(s) on stdout not shown\n", execMarkPrefix, s.unsealed)
	}
	if s.ann == nil {
		return s.refuse(fmt.Errorf("%w: the output ended without it (is the container's exec mode grant, and the agent new enough?)", execgrant.ErrNoEvidence))
	}
	if !started {
		err := errors.New("the output ended before the agent announced its key (is the container's exec mode grant, and the agent new enough?)")
		fmt.Fprintf(errOut, "%s%v\n", execMarkPrefix, err)
		return err
	}
	if err := owner.End(); err != nil {
		fmt.Fprintf(errOut, "%s%v\n", execMarkPrefix, err)
		return err
	}
	return nil
}

// session is the owner's side of one session's output.
type session struct {
	o           sessionOptions
	owner       *sealedlog.ExecOwner
	out, errOut io.Writer
	ann         *execgrant.Announcement // nil until read and verified
	held        []outLine               // sealed stderr lines read before it
	heldN       int
	unsealed    int // unsealed stdout lines
}

// refuse tells the owner why the session is refused.
func (s *session) refuse(err error) error {
	fmt.Fprintf(s.errOut, "%srefusing the session: %v\n", execMarkPrefix, err)
	return err
}

// line takes one line of the child's output. Until the announcement is
// verified, sealed stdout refuses the session and sealed stderr is held
// (the command may write to stderr at once, and the pipes are read
// independently); then every line is checked and relayed.
func (s *session) line(l outLine) error {
	isAnn := !l.stderr && execgrant.IsAnnouncement(l.b)
	if s.ann != nil {
		if isAnn {
			return s.refuse(fmt.Errorf("%w: a second announcement", execgrant.ErrBadAnnouncement))
		}
		return s.relay(l)
	}
	_, sealed := sealedItem(l.b)
	switch {
	case isAnn:
		a, err := checkAnnouncement(s.o, l.b, s.errOut)
		if err != nil {
			return s.refuse(err)
		}
		s.ann = a
		for _, h := range s.held {
			if err := s.relay(h); err != nil {
				return err
			}
		}
		s.held = nil
		return nil
	case sealed && l.stderr:
		if s.heldN += len(l.b); s.heldN > maxHeldStderr {
			return s.refuse(fmt.Errorf("%w: more than %d bytes of sealed stderr before the announcement", execgrant.ErrNoEvidence, maxHeldStderr))
		}
		s.held = append(s.held, l)
		return nil
	case sealed:
		return s.refuse(fmt.Errorf("%w: sealed output came first (the agent runs without an attester or is older than this tool, or the host answered the exec itself)", execgrant.ErrNoEvidence))
	}
	return s.relay(l) // unsealed: kubectl's messages, or counted
}

// sealedItem reports whether a line carries a sealed header or record,
// the way an opener finds one (anywhere on the line).
func sealedItem(l []byte) (header, sealed bool) {
	_, header = execgrant.HeaderDigest(l)
	return header, header || bytes.Contains(l, []byte(sealedlog.RecordPrefix))
}

// checkAnnouncement parses and verifies the session's announcement and
// says what was and was not checked.
func checkAnnouncement(o sessionOptions, line []byte, errOut io.Writer) (*execgrant.Announcement, error) {
	a, err := execgrant.ParseAnnouncement(line)
	if err != nil {
		return nil, err
	}
	if err := a.Verify(o.nonce, o.allowSample); err != nil {
		if errors.Is(err, execgrant.ErrSampleEvidence) {
			return nil, fmt.Errorf("%w; pass --insecure-sample-evidence to accept it on a development machine", err)
		}
		return nil, err
	}
	if o.evidenceOut != "" {
		if err := os.WriteFile(o.evidenceOut, a.Evidence, 0o644); err != nil {
			return nil, fmt.Errorf("--evidence-out: %w", err)
		}
	}
	if a.Tee == attest.TeeSample {
		fmt.Fprintf(errOut, "%sWARNING: sample evidence (no TEE), accepted by --insecure-sample-evidence: the agent is not authenticated, the host could be answering this session\n", execMarkPrefix)
	} else {
		fmt.Fprintf(errOut, "%sthe agent's session is bound to %s evidence (its report data checked); the %s signature, certificates and TCB are not checked here: save the evidence with --evidence-out for an attestation service\n", execMarkPrefix, a.Tee, map[string]string{attest.TeeTDX: "quote's", attest.TeeSNP: "report's"}[a.Tee])
	}
	return a, nil
}

// relay checks that a sealed header is one the announcement binds, then
// opens the line and prints its plaintext.
func (s *session) relay(l outLine) error {
	if header, _ := sealedItem(l.b); header && (s.ann == nil || !s.ann.Binds(l.b)) {
		return s.refuse(fmt.Errorf("%w: a stream header the evidence does not name (the host made or substituted a stream)", execgrant.ErrUnboundStream))
	}
	shown, notSealed, err := s.owner.Line(l.b)
	if err != nil {
		fmt.Fprintf(s.errOut, "%s%v\n", execMarkPrefix, err)
		return err
	}
	if notSealed {
		if l.stderr {
			// kubectl's own messages (or the host's): not from the
			// command, shown marked.
			fmt.Fprintf(s.errOut, "%skubectl: %s\n", execMarkPrefix, strings.TrimRight(string(l.b), "\r\n"))
		} else {
			s.unsealed++
		}
	}
	for _, o := range shown {
		w := s.out
		if o.Stderr {
			w = s.errOut
		}
		if _, err := w.Write(o.Data); err != nil {
			return err
		}
	}
	return nil
}

// readLines sends the lines of r, then an item with the read error.
func readLines(r io.Reader, stderr bool, lines chan<- outLine, stop <-chan struct{}) {
	br := bufio.NewReaderSize(r, execgrant.MaxAnnouncement)
	for {
		b, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// Not a sealed line nor an announcement (those are
			// shorter); pass what is there on as a line of its own, the
			// opener rejects or ignores it.
			err = nil
		}
		if len(b) > 0 {
			select {
			case lines <- outLine{b: append([]byte(nil), b...), stderr: stderr}:
			case <-stop:
				return
			}
		}
		if err != nil {
			select {
			case lines <- outLine{stderr: stderr, err: err}:
			case <-stop:
			}
			return
		}
	}
}

// pumpStdin seals in to the agent's key, a record per read so typed input
// goes at once, and ends with the final record and closing the child's
// stdin.
func pumpStdin(sealer *sealedlog.Sealer, in io.Reader, cin io.WriteCloser) error {
	buf := make([]byte, 4<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			b, serr := sealer.Write(buf[:n])
			if serr != nil {
				return serr
			}
			if _, werr := cin.Write(append(b, sealer.Flush()...)); werr != nil {
				return fmt.Errorf("writing to kubectl: %w", werr)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
	}
	if _, err := cin.Write(sealer.Close()); err != nil {
		return fmt.Errorf("writing to kubectl: %w", err)
	}
	return cin.Close()
}
