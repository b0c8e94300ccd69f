package sandbox

import (
	"context"
	"crypto/ecdh"
	"time"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// evidenceTimeout bounds making a session's evidence. A TDX quote goes
// through the host's quoting service, which may be slow or withhold it;
// the ExecProcess request waits meanwhile (its context does not reach
// this far), and the exec is refused when the time is up.
const evidenceTimeout = 30 * time.Second

// SetExecAttester sets the attester whose evidence announces encrypted
// exec sessions (execgrant.Announce), so the owner's tool can tell the
// agent in the TEE from a host answering cocoon-exec itself. Without one
// no session is announced, and cocoonctl exec refuses the session.
func (s *Sandbox) SetExecAttester(a attest.Attester) {
	s.grants.mu.Lock()
	defer s.grants.mu.Unlock()
	s.grants.attester = a
}

// announceSession returns the announcement line of an encrypted exec
// session, or nothing when the sandbox has no attester. The evidence binds
// the nonce of the very grant Exec took for this exec.
func (s *Sandbox) announceSession(cid, execID string, owner *ecdh.PublicKey, x *sealedlog.ExecAgent) ([]byte, error) {
	s.grants.mu.Lock()
	a, g := s.grants.attester, s.grants.taken[grantKey(cid, execID)]
	s.grants.mu.Unlock()
	if a == nil {
		return nil, nil
	}
	if g == nil {
		return nil, errs.Newf(errdefs.ErrFailedPrecondition, "encrypted exec %q: no grant to announce the session for", execID)
	}
	if k, err := g.ParseSealKey(); err != nil || k == nil || !k.Equal(owner) {
		return nil, errs.Newf(errdefs.ErrFailedPrecondition, "encrypted exec %q: the session's key is not the grant's", execID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), evidenceTimeout)
	defer cancel()
	line, err := execgrant.Announce(ctx, a, g.Nonce, x)
	if err != nil {
		return nil, errs.Newf(errdefs.ErrFailedPrecondition, "encrypted exec %q: %v", execID, err)
	}
	return line, nil
}
