package kbs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// resourceAttempts bounds the resource requests one GetResource makes when
// the KBS keeps answering 401 (guest-components kbs_protocol uses 3,
// KBS_GET_RESOURCE_MAX_ATTEMPT): a KBS that never accepts our token must
// not make the agent attest forever.
const resourceAttempts = 3

// GetResource fetches and decrypts one resource. Trustee answers almost
// every refusal with 401 (trustee kbs/src/error.rs:124-130), so the
// problem's type decides: a lost or rejected session (TokenNotFound,
// TokenVerifierError, or an unknown type) attests again, up to
// resourceAttempts requests; PolicyDeny is PERMISSION_DENIED and
// PluginInternalError (what a missing resource gets) NOT_FOUND, both
// without re-attesting; 403 and 404 are final too.
func (c *Client) GetResource(ctx context.Context, r Resource) ([]byte, error) {
	tok, err := c.Token(ctx)
	if err != nil {
		return nil, err
	}
	url := c.opts.Config.URL + "/kbs/v0/resource/" + r.Path()
	if r.Query != "" {
		url += "?" + r.Query
	}
	for attempt := 1; ; attempt++ {
		var body []byte
		err := c.retry(ctx, "resource "+r.String(), func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return permanent(err)
			}
			body, err = c.do(req)
			return err
		})
		var se *StatusError
		if errors.As(err, &se) && se.Code == http.StatusUnauthorized {
			switch se.ProblemType() {
			case problemPluginInternal:
				return nil, errs.Newf(errdefs.ErrNotFound, "get %s: not found: the KBS could not read it "+
					"(Trustee answers a missing resource, or a failing resource store, with 401 PluginInternalError): %v", r, se)

			case problemPolicyDeny:
				return nil, errs.Newf(errdefs.ErrPermissionDenied, "get %s: the KBS's resource policy denies it: %v", r, se)
			}
			if attempt >= resourceAttempts {
				return nil, errs.Newf(errdefs.ErrPermissionDenied, "get %s: the KBS still refuses the session after %d fresh attestations: %v", r, attempt-1, se)
			}
			c.opts.Log.InfoContext(ctx, "KBS session rejected, attesting again", "resource", r.String(), "problem", se.ProblemType())
			if tok, err = c.attest(ctx, tok); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get %s: %w", r, err)
		}
		plain, err := DecryptResource(body, c.key)
		if err != nil {
			return nil, errs.Newf(errdefs.ErrDataLoss, "get %s: %v", r, err)
		}
		return plain, nil
	}
}

// Resolve fetches a kbs:///repo/type/tag URI (image security policy,
// registry auth, sigstore configuration ...).
func (c *Client) Resolve(ctx context.Context, uri string) ([]byte, error) {
	r, err := ParseResourceURI(uri)
	if err != nil {
		return nil, err
	}
	return c.GetResource(ctx, r)
}

// FetchKey returns the key named by an image layer's key-provider kid
// (kbs:///default/key/1). Layer keys are AES-256 keys: 32 bytes.
func (c *Client) FetchKey(ctx context.Context, kid string) ([]byte, error) {
	k, err := c.Resolve(ctx, kid)
	if err != nil {
		return nil, err
	}
	if len(k) != 32 {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "key %s is %d bytes, want 32 (A256GCM)", kid, len(k))
	}
	return k, nil
}

// FetchCredentials writes every [[credentials]] resource to its path below
// root (root is "/" in the guest; tests use a temporary directory). Files are
// written whole (temp file + rename) with mode 0600.
func (c *Client) FetchCredentials(ctx context.Context, root string) error {
	for _, cr := range c.opts.Config.Credentials {
		data, err := c.Resolve(ctx, cr.ResourceURI)
		if err != nil {
			return fmt.Errorf("credential %s: %w", cr.Path, err)
		}
		dst, err := safepath.Join(root, cr.Path)
		if err != nil {
			return fmt.Errorf("credential %s: %w", cr.Path, err)
		}
		if err := writeFileAtomic(dst, data); err != nil {
			return fmt.Errorf("credential %s: %w", cr.Path, err)
		}
	}
	return nil
}

func writeFileAtomic(dst string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".cred-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// ResolveKey is FetchKey under the name the image puller's KeyResolver uses.
func (c *Client) ResolveKey(ctx context.Context, kid string) ([]byte, error) {
	return c.FetchKey(ctx, kid)
}
