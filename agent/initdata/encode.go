package initdata

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// AnnotationKey is the pod annotation Kata reads initdata from.
const AnnotationKey = "io.katacontainers.config.hypervisor.cc_init_data"

// Create writes an initdata TOML document for data with the given algorithm
// and returns it parsed (so Raw and Digest are what a guest computes).
// Output is deterministic: keys sorted, values as multi-line literal strings
// where TOML allows, so a policy stays readable in the document.
func Create(alg string, data map[string]string) (*Initdata, error) {
	if _, err := newHash(alg); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version = %s\nalgorithm = %s\n\n[data]\n", basicString(Version), basicString(alg))
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", basicString(k), tomlValue(data[k]))
	}
	return Parse([]byte(b.String()))
}

// tomlValue prefers a multi-line literal string (”'...”'), which needs no
// escaping, and falls back to a basic string when the text cannot be one.
func tomlValue(s string) string {
	literalOK := !strings.Contains(s, "'''") && !strings.HasSuffix(s, "'") && !strings.Contains(s, "\r")
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f {
			literalOK = false
			break
		}
	}
	if literalOK {
		// A newline right after the opening delimiter is trimmed by TOML, so
		// one is always added to keep leading newlines of s intact.
		return "'''\n" + s + "'''"
	}
	return basicString(s)
}

// basicString quotes s as a TOML basic string.
func basicString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// compress gzips raw.
func compress(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Annotation encodes raw TOML as the pod annotation value:
// base64(gzip(TOML)).
func Annotation(raw []byte) (string, error) {
	gz, err := compress(raw)
	if err != nil {
		return "", fmt.Errorf("initdata annotation: %w", err)
	}
	return base64.StdEncoding.EncodeToString(gz), nil
}

// ParseAnnotation decodes a pod annotation value back into initdata.
func ParseAnnotation(v string) (*Initdata, error) {
	if len(v) > base64.StdEncoding.EncodedLen(MaxCompressed) {
		return nil, fmt.Errorf("initdata annotation: %d bytes is too large", len(v))
	}
	gz, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil {
		return nil, fmt.Errorf("initdata annotation: invalid base64: %w", err)
	}
	raw, err := gunzip(gz)
	if err != nil {
		return nil, err
	}
	return Parse(raw)
}

// Image builds the block-device image Kata attaches: the magic, the gzip
// length as u64 little-endian, the gzip of raw, zero padded to 512 bytes.
func Image(raw []byte) ([]byte, error) {
	gz, err := compress(raw)
	if err != nil {
		return nil, fmt.Errorf("initdata image: %w", err)
	}
	n := len(Magic) + 8 + len(gz)
	if rem := n % sectorSize; rem != 0 {
		n += sectorSize - rem
	}
	img := make([]byte, n)
	copy(img, Magic)
	binary.LittleEndian.PutUint64(img[len(Magic):], uint64(len(gz)))
	copy(img[len(Magic)+8:], gz)
	return img, nil
}
