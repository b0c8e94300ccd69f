package kbstest

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Claim values of the EAR token Trustee's built-in attestation service
// issues (trustee attestation-service/src/ear_token/mod.rs:11-21).
const (
	earProfile   = "tag:github.com,2024:confidential-containers/Trustee"
	earIssuer    = "CoCo-Attestation-Service"
	earDeveloper = "https://confidentialcontainers.org"
	// TeePubkeyPointer is where Trustee's token verifier finds the TEE key
	// in an EAR token (trustee kbs/src/token/mod.rs:18-19).
	TeePubkeyPointer = "/submods/cpu0/ear.veraison.annotated-evidence/runtime_data_claims/tee-pubkey"
)

// earClaims builds the claims of an EAR attestation token: one appraisal
// "cpu0" whose annotated evidence holds the TEE's claims under its name,
// report_data, init_data and runtime_data_claims {nonce, tee-pubkey}
// (ear_token/broker.rs:302-328 and transform_claims, 440-500; the shape of
// attestation-service/docs/example.token.json).
func earClaims(tee, nonce string, pub any, reportData, initDigest []byte, iat, exp time.Time) map[string]any {
	evidence := map[string]any{
		tee:           map[string]any{"report_data": hex.EncodeToString(reportData)},
		"report_data": hex.EncodeToString(reportData),
		"runtime_data_claims": map[string]any{
			"nonce":      nonce,
			"tee-pubkey": pub,
		},
		"init_data":        nil,
		"init_data_claims": nil,
	}
	if initDigest != nil {
		evidence["init_data"] = hex.EncodeToString(initDigest)
	}
	return map[string]any{
		"eat_profile":     earProfile,
		"iat":             iat.Unix(),
		"exp":             exp.Unix(),
		"iss":             earIssuer,
		"ear.verifier-id": map[string]any{"developer": earDeveloper, "build": "kbstest"},
		"submods": map[string]any{
			"cpu0": map[string]any{
				"ear.status":                      "affirming",
				"ear.appraisal-policy-id":         "default",
				"ear.veraison.annotated-evidence": evidence,
				"ear.trustworthiness-vector": map[string]any{
					"instance-identity": 0, "configuration": 0, "executables": 0, "file-system": 0,
					"hardware": 2, "runtime-opaque": 0, "storage-opaque": 0, "sourced-data": 0,
				},
			},
		},
	}
}

// verifiedToken is what the KBS learns from a token it accepts.
type verifiedToken struct {
	tee string
	pub *jose.JSONWebKey
}

// verifyToken checks a token's ES256 signature and expiry and reads the
// TEE key at TeePubkeyPointer, as Trustee's TokenVerifier does before it
// releases anything (kbs/src/api_server.rs:411, token/mod.rs:105-114).
func (s *Server) verifyToken(raw string, now time.Time) (*verifiedToken, error) {
	if s.opts.UntrustedTokens {
		return nil, errors.New("token signer is not trusted")
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(&s.signPK.PublicKey)
	if err != nil {
		return nil, err
	}
	var c struct {
		Exp     int64 `json:"exp"`
		Submods struct {
			CPU0 struct {
				Evidence map[string]json.RawMessage `json:"ear.veraison.annotated-evidence"`
			} `json:"cpu0"`
		} `json:"submods"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	if now.Unix() >= c.Exp {
		return nil, errors.New("token expired")
	}
	var rt struct {
		Pub json.RawMessage `json:"tee-pubkey"`
	}
	if err := json.Unmarshal(c.Submods.CPU0.Evidence["runtime_data_claims"], &rt); err != nil || rt.Pub == nil {
		return nil, fmt.Errorf("tee public key not found in attestation token")
	}
	var pub jose.JSONWebKey
	if err := pub.UnmarshalJSON(rt.Pub); err != nil {
		return nil, fmt.Errorf("failed to parse tee public key: %w", err)
	}
	v := &verifiedToken{pub: &pub}
	for k := range c.Submods.CPU0.Evidence {
		switch k {
		case "report_data", "runtime_data_claims", "init_data", "init_data_claims":
		default:
			v.tee = k
		}
	}
	return v, nil
}
