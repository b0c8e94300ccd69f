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

// evidenceTimeout bounds making evidence for an exec session or a sealed
// container's log headers. A TDX quote goes through the host's quoting
// service, which may be slow or withhold it; the ExecProcess or
// CreateContainer request waits meanwhile (its context does not reach
// this far), and is refused when the time is up.
const evidenceTimeout = 30 * time.Second

// SetAttester sets the TEE's attester, whose evidence announces encrypted
// exec sessions (execgrant.Announce), so the owner's tool can tell the
// agent in the TEE from a host answering cocoon-exec itself, and attests
// sealed containers' log headers (attestLogs). Without one no session is
// announced, and cocoonctl exec refuses the session; sealed logs carry no
// attestation and `cocoonctl logs open` marks them NOT ATTESTED.
func (s *Sandbox) SetAttester(a attest.Attester) {
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

// attestLogs has a sealed container's streams carry the attester's
// evidence over their headers (one evidence for both, sealedlog.Attest),
// so the owner can tell them from streams anyone holding the owner's
// public key could make. With an attester set, evidence the TEE does not
// give refuses the container (FAILED_PRECONDITION): it fails closed
// rather than run with logs its owner cannot tell from a forgery. Without
// one (no TEE outside confidential mode) the streams go unattested.
func (s *Sandbox) attestLogs(ctx context.Context, cid string, sealers ...*sealedlog.Sealer) error {
	s.grants.mu.Lock()
	a := s.grants.attester
	s.grants.mu.Unlock()
	if a == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, evidenceTimeout)
	defer cancel()
	if err := sealedlog.Attest(ctx, a, sealers...); err != nil {
		return errs.Newf(errdefs.ErrFailedPrecondition, "sealed logs of %s: %v", cid, err)
	}
	return nil
}
