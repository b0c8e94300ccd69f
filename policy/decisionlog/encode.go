package decisionlog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// appendBody appends e's line without its hash, as the chain's entry seq
// after prev at time now: exactly the bytes json.Marshal writes for the
// Entry with those fields set and Hash empty (TestEncodeMatchesJSON), so
// the format is unchanged, but without reflection or allocation for the
// common entry. Fields are in the struct's order.
func appendBody(dst []byte, e *Entry, seq uint64, now time.Time, prev string) ([]byte, error) {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = now.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","kind":`...)
	dst = appendString(dst, e.Kind)
	dst = appendField(dst, `,"request":`, e.Request)
	dst = appendField(dst, `,"input_sha256":`, e.InputSHA256)
	if e.Allowed != nil {
		dst = append(dst, `,"allowed":`...)
		dst = strconv.AppendBool(dst, *e.Allowed)
	}
	if len(e.Ops) > 0 {
		// Ops are rare (state changes) and must be valid JSON; let
		// encoding/json check and compact them as it always did.
		ops, err := json.Marshal(e.Ops)
		if err != nil {
			return dst, fmt.Errorf("decision log: ops: %w", err)
		}
		dst = append(dst, `,"ops":`...)
		dst = append(dst, ops...)
	}
	if e.Committed != nil {
		dst = append(dst, `,"committed":`...)
		dst = strconv.AppendBool(dst, *e.Committed)
	}
	dst = appendField(dst, `,"policy_sha256":`, e.PolicySHA256)
	dst = appendField(dst, `,"source":`, e.Source)
	dst = appendField(dst, `,"message":`, e.Message)
	if e.Summary != nil {
		dst = appendSummary(append(dst, `,"summary":`...), e.Summary)
	}
	dst = append(dst, `,"prev":`...)
	dst = appendString(dst, prev)
	return append(dst, '}'), nil
}

// appendField appends an omitempty string field.
func appendField(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	return appendString(append(dst, key...), v)
}

// appendString appends s as a JSON string. Strings of plain printable
// ASCII (request names, digests, sources) are copied; anything that
// needs escaping goes through encoding/json, whose escaping (HTML
// characters, invalid UTF-8, U+2028/2029) the log has always used.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendSealed appends e's complete line (with its hash and newline) as
// entry seq after prev, and returns the line's hash.
func appendSealed(dst []byte, e *Entry, seq uint64, now time.Time, prev string) ([]byte, string, error) {
	start := len(dst)
	dst, err := appendBody(dst, e, seq, now, prev)
	if err != nil {
		return dst[:start], "", err
	}
	// The hash covers the line without it: the body as encoded, closing
	// brace included; the hash field then takes the brace's place.
	sum := sha256.Sum256(dst[start:])
	dst = append(dst[:len(dst)-1], `,"hash":"`...)
	dst = hex.AppendEncode(dst, sum[:])
	hash := string(dst[len(dst)-2*sha256.Size:])
	return append(dst, "\"}\n"...), hash, nil
}
