// Package sealed unseals CoCo sealed secrets: values "sealed.<JWS>" whose
// ES256-signed payload names where the secret lives. The signature is checked
// with the public key named by the JWS kid (a kbs:/// resource or a file in
// the local key directory) before anything is fetched, so the host cannot
// substitute its own secret pointers.
package sealed

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/cocoon-tee/cocoon/agent/internal/safepath"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Prefix marks a sealed value.
const Prefix = "sealed."

// Version is the only sealed secret format version.
const Version = "0.1.0"

// DefaultKeyDir holds locally provisioned verification keys.
const DefaultKeyDir = "/run/confidential-containers/cdh/sealed-secret"

// maxSealed bounds a sealed value.
const maxSealed = 64 << 10

// Resolver fetches kbs:/// resources (the KBS client implements it).
type Resolver interface {
	Resolve(ctx context.Context, uri string) ([]byte, error)
}

// Unsealer unseals values. The zero KeyDir means DefaultKeyDir.
type Unsealer struct {
	KBS    Resolver
	KeyDir string
}

// Secret is the signed payload.
type Secret struct {
	Version          string         `json:"version"`
	Type             string         `json:"type"`
	Provider         string         `json:"provider"`
	Name             string         `json:"name,omitempty"`
	ProviderSettings map[string]any `json:"provider_settings"`
	Annotations      map[string]any `json:"annotations,omitempty"`
}

// IsSealed reports whether a value is a sealed secret.
func IsSealed(v string) bool { return strings.HasPrefix(v, Prefix) }

// Parse splits a sealed value and returns the kid and the unverified JWS.
func Parse(value string) (*jose.JSONWebSignature, string, error) {
	if !IsSealed(value) {
		return nil, "", errdefs.ErrInvalidArgument.WithMessage("value is not a sealed secret (no \"sealed.\" prefix)")
	}
	if len(value) > maxSealed {
		return nil, "", errs.Newf(errdefs.ErrInvalidArgument, "sealed secret is %d bytes, limit %d", len(value), maxSealed)
	}
	compact := strings.TrimPrefix(value, Prefix)
	if strings.Count(compact, ".") != 2 {
		return nil, "", errdefs.ErrInvalidArgument.WithMessage("sealed secret: want sealed.<header>.<payload>.<signature>")
	}
	jws, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, "", errdefs.ErrInvalidArgument.WithMessage("sealed secret: " + err.Error())
	}
	if len(jws.Signatures) != 1 {
		return nil, "", errdefs.ErrInvalidArgument.WithMessage("sealed secret: want exactly one signature")
	}
	kid := jws.Signatures[0].Protected.KeyID
	if kid == "" {
		return nil, "", errdefs.ErrInvalidArgument.WithMessage("sealed secret: protected header has no kid")
	}
	return jws, kid, nil
}

// Unseal verifies a sealed value and returns the secret it points to.
func (u *Unsealer) Unseal(ctx context.Context, value string) (string, error) {
	jws, kid, err := Parse(value)
	if err != nil {
		return "", err
	}
	keyJSON, err := u.verificationKey(ctx, kid)
	if err != nil {
		return "", fmt.Errorf("sealed secret: verification key %q: %w", kid, err)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(keyJSON); err != nil {
		return "", errs.Newf(errdefs.ErrInvalidArgument, "sealed secret: verification key %q is not a JWK: %v", kid, err)
	}
	if !jwk.IsPublic() {
		jwk = jwk.Public()
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return "", errs.Newf(errdefs.ErrPermissionDenied, "sealed secret: signature does not verify with key %q", kid)
	}
	var s Secret
	if err := json.Unmarshal(payload, &s); err != nil {
		return "", errdefs.ErrInvalidArgument.WithMessage("sealed secret: payload is not a secret: " + err.Error())
	}
	if s.Version != Version {
		return "", errs.Newf(errdefs.ErrInvalidArgument, "sealed secret: version %q (want %s)", s.Version, Version)
	}
	switch {
	case s.Type == "vault" && s.Provider == "kbs":
		if u.KBS == nil {
			return "", errdefs.ErrFailedPrecondition.WithMessage("sealed secret: no KBS configured")
		}
		b, err := u.KBS.Resolve(ctx, s.Name)
		if err != nil {
			return "", fmt.Errorf("sealed secret: %w", err)
		}
		return string(b), nil
	case s.Type == "vault" || s.Type == "envelope":
		return "", errs.Newf(errdefs.ErrNotImplemented, "sealed secret: %s secrets from provider %q are not supported (only vault/kbs)", s.Type, s.Provider)
	}
	return "", errs.Newf(errdefs.ErrInvalidArgument, "sealed secret: unknown type %q", s.Type)
}

// verificationKey loads the JWK named by kid: a kbs:/// resource, or a file
// inside the key directory.
func (u *Unsealer) verificationKey(ctx context.Context, kid string) ([]byte, error) {
	if strings.HasPrefix(kid, "kbs:") {
		if u.KBS == nil {
			return nil, errdefs.ErrFailedPrecondition.WithMessage("no KBS configured")
		}
		return u.KBS.Resolve(ctx, kid)
	}
	dir := u.KeyDir
	if dir == "" {
		dir = DefaultKeyDir
	}
	p, err := safepath.Join(dir, kid)
	if err != nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil, errdefs.ErrNotFound.WithMessage("no such key in " + dir)
	}
	return b, err
}

// UnsealEnv returns env ("NAME=value" entries) with every sealed value
// replaced by its secret. Errors name the variable, never a value.
func (u *Unsealer) UnsealEnv(ctx context.Context, env []string) ([]string, error) {
	out := make([]string, len(env))
	for i, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !IsSealed(val) {
			out[i] = kv
			continue
		}
		plain, err := u.Unseal(ctx, val)
		if err != nil {
			return nil, fmt.Errorf("environment variable %s: %w", name, err)
		}
		out[i] = name + "=" + plain
	}
	return out, nil
}
