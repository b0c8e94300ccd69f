package kbs

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// expirySkew renews a token this long before it expires, so a request does
// not race the KBS's clock.
const expirySkew = 10 * time.Second

// Token is an attestation token from the KBS. The client does not verify
// its signature (it is not the relying party); it reads the expiry.
type Token struct {
	Raw    string
	Expiry time.Time // zero when the token has no exp claim
}

// ParseToken reads a JWT's exp claim.
func ParseToken(raw string) (*Token, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("kbs token: want a JWT with 3 parts, got %d", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, fmt.Errorf("kbs token: payload: %w", err)
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("kbs token: claims: %w", err)
	}
	t := &Token{Raw: raw}
	if claims.Exp != nil {
		sec, err := claims.Exp.Int64()
		if err != nil {
			return nil, fmt.Errorf("kbs token: exp %q is not an integer", claims.Exp.String())
		}
		t.Expiry = time.Unix(sec, 0)
	}
	return t, nil
}

// Valid reports whether the token can still be used at now.
func (t *Token) Valid(now time.Time) bool {
	return t.Expiry.IsZero() || now.Add(expirySkew).Before(t.Expiry)
}
