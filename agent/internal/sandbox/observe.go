package sandbox

import (
	"context"
	"crypto/ecdh"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/internal/observe"
	"github.com/cocoon-tee/cocoon/agent/internal/stream"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Annotations containerd puts on every container's spec; the policy checks
// them at CreateContainer (generated policies compare them with the pod).
const (
	annContainerName = "io.kubernetes.cri.container-name"
	annPodName       = "io.kubernetes.cri.sandbox-name"
	annPodNamespace  = "io.kubernetes.cri.sandbox-namespace"
)

// grants holds the exec grants the policy gate has verified and allowed,
// from the decision until the request finishes, for Exec to run. Keyed by
// container id and exec id.
type grants struct {
	mu  sync.Mutex
	m   map[string]admitted
	ran map[string]ranExec // execs started from a grant, whose output the owner asked for
	// held are encrypted execs being set up: their stdio is refused
	// until it is sealed and filtered (StdioReady).
	held map[string]bool
	// taken are the grants Exec took, until the request ends: an
	// encrypted exec's announcement binds the grant's nonce.
	taken map[string]*execgrant.Grant
	// attester makes the evidence an encrypted exec is announced with
	// (observe_evidence.go); nil announces nothing.
	attester attest.Attester
}

// ranExec is one exec started from a grant. A record matches only the
// very process it was made for, so a container removed and created again
// under the same id, or an exec id reused, is never taken for a granted
// exec; records of processes that are gone are dropped (pruneRan).
type ranExec struct {
	c *container.Container
	p *container.Process
}

type admitted struct {
	token string
	g     *execgrant.Grant
}

func grantKey(cid, execID string) string { return cid + "\x00" + execID }

// observeConfig is the owner's cocoon.toml, or the defaults without one.
func (s *Sandbox) observeConfig() *observe.Config {
	if s.o.Observe == nil {
		return observe.Default()
	}
	return s.o.Observe
}

// ObserveConfig is the owner's observability settings the sandbox applies.
func (s *Sandbox) ObserveConfig() *observe.Config { return s.observeConfig() }

// modesOf returns a container's Kubernetes name and its modes.
func (s *Sandbox) modesOf(c *container.Container) (string, observe.Modes) {
	name := c.Spec().Annotations[annContainerName]
	return name, s.observeConfig().For(name)
}

// sealOutput applies a new container's log mode to its init's output
// before the container is registered, so no read can come first: sealed
// to the owner's key, or drained and never shown. Sealed streams are
// attested (attestLogs) before their first record.
func (s *Sandbox) sealOutput(ctx context.Context, c *container.Container) error {
	_, m := s.modesOf(c)
	io := c.Init().IO
	switch m.Logs {
	case observe.LogsDeny:
		io.Discard(stream.Stdout)
		io.Discard(stream.Stderr)
	case observe.LogsSeal:
		var sealers []*sealedlog.Sealer
		for _, w := range []stream.Which{stream.Stdout, stream.Stderr} {
			sl, err := sealedlog.NewSealer(s.observeConfig().SealKey, c.ID()+"/"+w.String(), sealedlog.Options{})
			if err != nil {
				return fmt.Errorf("seal %s of %s: %w", w, c.ID(), err)
			}
			sealers = append(sealers, sl)
		}
		if err := s.attestLogs(ctx, c.ID(), sealers...); err != nil {
			return err
		}
		for i, w := range []stream.Which{stream.Stdout, stream.Stderr} {
			if err := io.Seal(w, sealers[i], stream.SealOptions{}); err != nil {
				return fmt.Errorf("seal %s of %s: %w", w, c.ID(), err)
			}
		}
	}
	return nil
}

// StreamGrantedExec is the stream mode of an exec the owner granted: its
// output is in the clear, and the owner asked for it by running the grant.
// An exec with end-to-end encrypted I/O is "seal" instead.
const StreamGrantedExec = "exec-grant"

// StreamMode is "exec-grant" for a granted exec's output (above), "seal" when a process's output is sealed, "deny" when the
// owner denies the container's logs (its init's output), else "plain".
func (s *Sandbox) StreamMode(cid, execID string) string {
	c, err := s.Container(cid)
	if err != nil {
		return "plain" // the read fails on its own
	}
	p, err := c.Process(execID)
	if err != nil {
		return "plain"
	}
	if p.IO.Sealed(stream.Stdout) {
		return string(observe.LogsSeal)
	}
	if _, m := s.modesOf(c); p.Init && m.Logs == observe.LogsDeny {
		return string(observe.LogsDeny)
	}
	s.grants.mu.Lock()
	r, ok := s.grants.ran[grantKey(cid, p.ExecID)]
	s.grants.mu.Unlock()
	granted := ok && !p.Init && r.c == c && r.p == p
	if granted {
		return StreamGrantedExec
	}
	return string(observe.LogsPlain)
}

// VerifyExecGrant applies the container's exec mode to an ExecProcess's
// argv. It returns the verified grant in grant mode, nil when the policy
// decides the request as it is (policy mode), or the refusal with its
// reason (deny mode, no token, a token that does not verify).
func (s *Sandbox) VerifyExecGrant(cid string, args []string, now time.Time) (*execgrant.Grant, error) {
	c, err := s.Container(cid)
	if err != nil {
		// Nothing to exec in: the policy decides first, as for any
		// request, and the handler then refuses the unknown container.
		return nil, nil
	}
	name, m := s.modesOf(c)
	switch m.Exec {
	case observe.ExecPolicy:
		return nil, nil
	case observe.ExecDeny:
		return nil, errs.Newf(errdefs.ErrPermissionDenied, "exec in container %q is denied by the owner's cocoon.toml", name)
	}
	if len(args) != 2 || args[0] != execgrant.Command {
		return nil, errs.Newf(errdefs.ErrPermissionDenied, "container %q runs only owner-signed exec grants: %s TOKEN", name, execgrant.Command)
	}
	g, err := execgrant.Verify(args[1], s.observeConfig().ExecKeys, now, execgrant.Target{Pods: s.podNames(c), Container: name})
	if err != nil {
		return nil, fmt.Errorf("exec grant refused: %w", err)
	}
	return g, nil
}

// podNames are the names a grant may use for this pod: the sandbox id and
// the namespace/name of the container's (policy-checked) annotations.
func (s *Sandbox) podNames(c *container.Container) []string {
	s.mu.Lock()
	names := []string{s.id}
	s.mu.Unlock()
	a := c.Spec().Annotations
	if a[annPodName] != "" {
		names = append(names, a[annPodNamespace]+"/"+a[annPodName])
	}
	return names
}

// AdmitExecGrant hands a verified, allowed grant to the Exec that follows;
// release forgets it.
func (s *Sandbox) AdmitExecGrant(cid, execID, token string, g *execgrant.Grant) (release func()) {
	k := grantKey(cid, execID)
	s.grants.mu.Lock()
	if s.grants.m == nil {
		s.grants.m = map[string]admitted{}
	}
	s.grants.m[k] = admitted{token: token, g: g}
	s.grants.mu.Unlock()
	return func() {
		s.grants.mu.Lock()
		if a, ok := s.grants.m[k]; ok && a.g == g {
			delete(s.grants.m, k)
		}
		if s.grants.taken[k] == g {
			delete(s.grants.taken, k)
		}
		s.grants.mu.Unlock()
	}
}

// takeGrant hands the admitted grant to Exec, once; it stays known as
// taken until the request ends, for the session announcement.
func (s *Sandbox) takeGrant(cid, execID string) (admitted, bool) {
	k := grantKey(cid, execID)
	s.grants.mu.Lock()
	defer s.grants.mu.Unlock()
	a, ok := s.grants.m[k]
	delete(s.grants.m, k)
	if ok {
		if s.grants.taken == nil {
			s.grants.taken = map[string]*execgrant.Grant{}
		}
		s.grants.taken[k] = a.g
	}
	return a, ok
}

// ranGrant records that an exec was started from a grant, and forgets
// the records of granted execs that are gone.
func (s *Sandbox) ranGrant(c *container.Container, p *container.Process) {
	s.pruneRan()
	s.grants.mu.Lock()
	defer s.grants.mu.Unlock()
	if s.grants.ran == nil {
		s.grants.ran = map[string]ranExec{}
	}
	s.grants.ran[grantKey(c.ID(), p.ExecID)] = ranExec{c: c, p: p}
}

// pruneRan drops the records of granted execs whose container was removed
// (or replaced) or which were waited for and forgotten. The checks take
// the sandbox's and the container's locks, so they run on a snapshot,
// outside grants.mu.
func (s *Sandbox) pruneRan() {
	s.grants.mu.Lock()
	snap := make(map[string]ranExec, len(s.grants.ran))
	for k, r := range s.grants.ran {
		snap[k] = r
	}
	s.grants.mu.Unlock()
	var gone []string
	for k, r := range snap {
		c, err := s.Container(r.c.ID())
		if err != nil || c != r.c {
			gone = append(gone, k)
			continue
		}
		if p, err := c.Process(r.p.ExecID); err != nil || p != r.p {
			gone = append(gone, k)
		}
	}
	s.grants.mu.Lock()
	for _, k := range gone {
		if s.grants.ran[k] == snap[k] {
			delete(s.grants.ran, k)
		}
	}
	s.grants.mu.Unlock()
}

// RanGrants is the number of granted execs the sandbox still remembers.
func (s *Sandbox) RanGrants() int {
	s.pruneRan()
	s.grants.mu.Lock()
	defer s.grants.mu.Unlock()
	return len(s.grants.ran)
}

// holdStdio makes StdioReady refuse the exec's stdio until release.
func (s *Sandbox) holdStdio(cid, execID string) (release func()) {
	k := grantKey(cid, execID)
	s.grants.mu.Lock()
	if s.grants.held == nil {
		s.grants.held = map[string]bool{}
	}
	s.grants.held[k] = true
	s.grants.mu.Unlock()
	return func() {
		s.grants.mu.Lock()
		delete(s.grants.held, k)
		s.grants.mu.Unlock()
	}
}

// StdioReady is checked by the stdio requests (WriteStdin, ReadStdout,
// ReadStderr, CloseStdin, TtyWinResize) after they found their process: an
// encrypted exec's stdio is unavailable until it is sealed and filtered,
// so the host cannot read its first output or type into it in the clear.
// The hold is set before the process exists, so a request that finds the
// process sees it.
func (s *Sandbox) StdioReady(cid, execID string) error {
	s.grants.mu.Lock()
	defer s.grants.mu.Unlock()
	if s.grants.held[grantKey(cid, execID)] {
		return errs.Newf(errdefs.ErrFailedPrecondition, "exec %q is being set up for end-to-end encrypted I/O", execID)
	}
	return nil
}

// encryptExecIO seals an exec's output to the grant's key (announcing the
// session with TEE evidence, then the agent's stdin key, first on stdout)
// and lets only stdin sealed to that key reach the process. A stdin the
// host changed, reordered, replayed or cut ends the session: the owner is
// told in the sealed stderr and the process is killed.
func (s *Sandbox) encryptExecIO(c *container.Container, p *container.Process, owner *ecdh.PublicKey) error {
	x, err := sealedlog.NewExecAgent(owner, c.ID()+"/"+p.ExecID)
	if err != nil {
		return fmt.Errorf("encrypted exec %q: %w", p.ExecID, err)
	}
	ann, err := s.announceSession(c.ID(), p.ExecID, owner, x)
	if err != nil {
		return err
	}
	io := p.IO
	if err := io.Seal(stream.Stdout, x.Stdout, stream.SealOptions{Preamble: append(ann, x.Preamble...)}); err != nil {
		return fmt.Errorf("encrypted exec %q: %w", p.ExecID, err)
	}
	if err := io.Seal(stream.Stderr, x.Stderr, stream.SealOptions{}); err != nil {
		return fmt.Errorf("encrypted exec %q: %w", p.ExecID, err)
	}
	end := func(err error) {
		io.Note(stream.Stderr, []byte("\ncocoon: "+err.Error()+"; the session is closed\n"))
		_ = c.Signal(context.Background(), p.ExecID, unix.SIGKILL)
	}
	if err := io.FilterStdin(stdinOpener{x.Stdin}, end); err != nil {
		return fmt.Errorf("encrypted exec %q: %w", p.ExecID, err)
	}
	return nil
}

// stdinOpener classes the session's errors for the host: its stdin was
// refused.
type stdinOpener struct{ o *sealedlog.StdinOpener }

func (so stdinOpener) Write(p []byte) ([]byte, bool, error) {
	plain, eof, err := so.o.Write(p)
	if err != nil {
		err = fmt.Errorf("%w: %w", errdefs.ErrPermissionDenied, err)
	}
	return plain, eof, err
}

func (so stdinOpener) Close() error {
	if err := so.o.Close(); err != nil {
		return fmt.Errorf("%w: %w", errdefs.ErrPermissionDenied, err)
	}
	return nil
}

// grantedProcess is what a granted exec runs: the grant's argv with the
// container's own environment, working directory, user, capabilities and
// limits, not the request's (the host could otherwise add LD_PRELOAD or
// privileges to the granted command). Only the terminal settings come
// from the request, so kubectl exec -it works.
func grantedProcess(base *specs.Process, req *specs.Process, argv []string) *specs.Process {
	p := *base
	p.Args = slices.Clone(argv)
	p.Env = slices.Clone(base.Env)
	p.CommandLine = ""
	p.Terminal = req.Terminal
	p.ConsoleSize = req.ConsoleSize
	return &p
}
