package testgrant

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

// CheckSampleAnnouncement checks an encrypted exec session's announcement
// as `cocoonctl exec` does, for an agent whose attester is the sample one
// (the tests' stand-in for TEE hardware): it is refused unless sample
// evidence is allowed, verifies for the grant's nonce and no other, and
// names exactly the sealed headers of the session's output, in order (the
// key stream's and stdout's on stdout, then stderr's; a header repeated
// in the output counts once).
func CheckSampleAnnouncement(tb testing.TB, ann *execgrant.Announcement, nonce string, stdout, stderr []byte) {
	tb.Helper()
	if ann.Tee != "sample" {
		tb.Errorf("announced tee %q, want the sample attester", ann.Tee)
	}
	if err := ann.Verify(nonce, false); !errors.Is(err, execgrant.ErrSampleEvidence) {
		tb.Errorf("sample evidence without allowing it: %v, want ErrSampleEvidence", err)
	}
	if err := ann.Verify(nonce, true); err != nil {
		tb.Errorf("the announcement does not verify for its grant: %v", err)
	}
	if err := ann.Verify(execgrant.NewNonce(), true); !errors.Is(err, execgrant.ErrEvidenceMismatch) {
		tb.Errorf("the announcement verifies for another grant's nonce: %v", err)
	}
	var got []string
	for _, h := range append(headerLines(stdout), headerLines(stderr)...) {
		if !ann.Binds(h) {
			tb.Errorf("header %.80q is not bound by the announcement", h)
		}
		d, _ := execgrant.HeaderDigest(h)
		got = append(got, base64.RawURLEncoding.EncodeToString(d[:]))
	}
	if len(got) != 3 {
		tb.Errorf("%d sealed headers in the session's output, want the key stream's, stdout's and stderr's", len(got))
	}
	if !slices.Equal(got, ann.Headers) {
		tb.Errorf("headers in the output %v, announced %v", got, ann.Headers)
	}
}

// headerLines are the distinct sealed header lines of some output, in
// order.
func headerLines(out []byte) [][]byte {
	var hs [][]byte
	for _, l := range bytes.Split(out, []byte("\n")) {
		if bytes.HasPrefix(l, []byte(sealedlog.HeaderPrefix)) && !slices.ContainsFunc(hs, func(h []byte) bool { return bytes.Equal(h, l) }) {
			hs = append(hs, l)
		}
	}
	return hs
}
