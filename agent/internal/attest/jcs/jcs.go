// Package jcs produces the RFC 8785 (JSON Canonicalization Scheme) form of a
// JSON document. The KBS protocol binds the TEE public key and the nonce into
// the hardware report through a hash of this canonical form, so client and
// verifier must agree on it byte for byte.
package jcs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 256

// Transform returns the canonical form of the JSON document in data.
func Transform(data []byte) ([]byte, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("jcs: input is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var buf bytes.Buffer
	if err := encodeValue(dec, &buf, 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("jcs: trailing data after JSON value")
	}
	return buf.Bytes(), nil
}

// Marshal encodes v with encoding/json and canonicalises the result.
func Marshal(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("jcs: %w", err)
	}
	return Transform(raw)
}

func encodeValue(dec *json.Decoder, buf *bytes.Buffer, depth int) error {
	if depth > maxDepth {
		return errors.New("jcs: nesting too deep")
	}
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("jcs: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return encodeObject(dec, buf, depth)
		case '[':
			return encodeArray(dec, buf, depth)
		}
		return fmt.Errorf("jcs: unexpected delimiter %q", t)
	case string:
		writeString(buf, t)
	case json.Number:
		s, err := formatNumber(t)
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case bool:
		if t {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case nil:
		buf.WriteString("null")
	default:
		return fmt.Errorf("jcs: unexpected token %v", tok)
	}
	return nil
}

type member struct {
	key   string
	value []byte
}

func encodeObject(dec *json.Decoder, buf *bytes.Buffer, depth int) error {
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("jcs: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("jcs: object key is %T, not a string", tok)
		}
		if seen[key] {
			return fmt.Errorf("jcs: duplicate object key %q", key)
		}
		seen[key] = true
		var v bytes.Buffer
		if err := encodeValue(dec, &v, depth+1); err != nil {
			return err
		}
		members = append(members, member{key, v.Bytes()})
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return fmt.Errorf("jcs: %w", err)
	}
	// RFC 8785 §3.2.3: keys sort by their UTF-16 code units.
	sort.Slice(members, func(i, j int) bool { return lessUTF16(members[i].key, members[j].key) })
	buf.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeString(buf, m.key)
		buf.WriteByte(':')
		buf.Write(m.value)
	}
	buf.WriteByte('}')
	return nil
}

func encodeArray(dec *json.Decoder, buf *bytes.Buffer, depth int) error {
	buf.WriteByte('[')
	first := true
	for dec.More() {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		if err := encodeValue(dec, buf, depth+1); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // closing ']'
		return fmt.Errorf("jcs: %w", err)
	}
	buf.WriteByte(']')
	return nil
}

func lessUTF16(a, b string) bool {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}

// writeString escapes only what RFC 8785 §3.2.2.2 requires; everything else,
// including non-ASCII, is emitted as UTF-8.
func writeString(buf *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	buf.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			buf.WriteString(`\"`)
		case '\\':
			buf.WriteString(`\\`)
		case '\b':
			buf.WriteString(`\b`)
		case '\f':
			buf.WriteString(`\f`)
		case '\n':
			buf.WriteString(`\n`)
		case '\r':
			buf.WriteString(`\r`)
		case '\t':
			buf.WriteString(`\t`)
		default:
			if r < 0x20 {
				buf.WriteString(`\u00`)
				buf.WriteByte(hex[r>>4])
				buf.WriteByte(hex[r&0xf])
			} else {
				buf.WriteRune(r)
			}
		}
	}
	buf.WriteByte('"')
}

// formatNumber renders a number the way ECMAScript's Number.prototype.toString
// does (RFC 8785 §3.2.2.3), via the shortest round-trip digits of an IEEE 754
// double.
func formatNumber(n json.Number) (string, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("jcs: number %q is not representable as an IEEE 754 double", string(n))
	}
	if f == 0 {
		return "0", nil
	}
	sign := ""
	if f < 0 {
		sign = "-"
		f = -f
	}
	// Shortest digits d1.d2d3...e±x
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expStr, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, err := strconv.Atoi(expStr)
	if err != nil {
		return "", fmt.Errorf("jcs: %w", err)
	}
	k := len(digits)
	nExp := exp + 1 // position of the decimal point relative to the digits
	var out string
	switch {
	case k <= nExp && nExp <= 21:
		out = digits + strings.Repeat("0", nExp-k)
	case 0 < nExp && nExp <= 21:
		out = digits[:nExp] + "." + digits[nExp:]
	case -6 < nExp && nExp <= 0:
		out = "0." + strings.Repeat("0", -nExp) + digits
	default:
		es := nExp - 1
		expPart := "e+" + strconv.Itoa(es)
		if es < 0 {
			expPart = "e-" + strconv.Itoa(-es)
		}
		if k == 1 {
			out = digits + expPart
		} else {
			out = digits[:1] + "." + digits[1:] + expPart
		}
	}
	return sign + out, nil
}
