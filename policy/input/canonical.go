package input

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Canonical writes m's input as canonical JSON: exactly the bytes
// encoding/json produces for Encode(m) (keys sorted, HTML characters
// escaped), which the decision log hashes. Writing them straight from the
// message spares the generic document on every logged decision.
//
// A Canonical caches the sorted key order per message type; it is safe for
// concurrent use.
type Canonical struct {
	plans sync.Map // protoreflect.MessageDescriptor → []canonicalField
}

type canonicalField struct {
	key   string // the JSON key, quoted, with its colon
	fd    protoreflect.FieldDescriptor
	oneof protoreflect.OneofDescriptor
}

// Digest is the hex sha256 of m's canonical JSON.
func (c *Canonical) Digest(m proto.Message) string {
	sum := sha256.Sum256(c.Append(nil, m))
	return hex.EncodeToString(sum[:])
}

// Append appends m's canonical JSON to buf.
func (c *Canonical) Append(buf []byte, m proto.Message) []byte {
	if m == nil {
		return append(buf, "null"...)
	}
	return c.message(buf, m.ProtoReflect())
}

func (c *Canonical) plan(md protoreflect.MessageDescriptor) []canonicalField {
	if p, ok := c.plans.Load(md); ok {
		return p.([]canonicalField)
	}
	fields := md.Fields()
	var p []canonicalField
	seen := map[protoreflect.Name]bool{}
	names := map[string]string{} // quoted key → raw name, for sorting
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		f := canonicalField{fd: fd}
		name := rustField(string(fd.Name()))
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if seen[od.Name()] {
				continue
			}
			seen[od.Name()] = true
			f = canonicalField{oneof: od}
			name = rustField(string(od.Name()))
		}
		f.key = string(appendString(nil, name)) + ":"
		names[f.key] = name
		p = append(p, f)
	}
	sort.Slice(p, func(i, j int) bool { return names[p[i].key] < names[p[j].key] })
	actual, _ := c.plans.LoadOrStore(md, p)
	return actual.([]canonicalField)
}

func (c *Canonical) message(buf []byte, m protoreflect.Message) []byte {
	buf = append(buf, '{')
	for i, f := range c.plan(m.Descriptor()) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, f.key...)
		buf = c.field(buf, m, f)
	}
	return append(buf, '}')
}

func (c *Canonical) field(buf []byte, m protoreflect.Message, f canonicalField) []byte {
	if f.oneof != nil {
		set := m.WhichOneof(f.oneof)
		if set == nil {
			return append(buf, "null"...)
		}
		buf = append(buf, '{')
		buf = appendString(buf, variantName(string(set.Name())))
		buf = append(buf, ':')
		buf = c.single(buf, set, m.Get(set))
		return append(buf, '}')
	}
	fd := f.fd
	switch {
	case fd.IsList():
		l := m.Get(fd).List()
		buf = append(buf, '[')
		for i := 0; i < l.Len(); i++ {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = c.single(buf, fd, l.Get(i))
		}
		return append(buf, ']')
	case fd.IsMap():
		mp := m.Get(fd).Map()
		keys := make([]string, 0, mp.Len())
		vals := make(map[string]protoreflect.Value, mp.Len())
		mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			keys = append(keys, k.String())
			vals[k.String()] = v
			return true
		})
		sort.Strings(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, k)
			buf = append(buf, ':')
			buf = c.single(buf, fd.MapValue(), vals[k])
		}
		return append(buf, '}')
	case fd.Message() != nil && !m.Has(fd), fd.HasOptionalKeyword() && !m.Has(fd):
		return append(buf, "null"...)
	}
	return c.single(buf, fd, m.Get(fd))
}

func (c *Canonical) single(buf []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) []byte {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return strconv.AppendBool(buf, v.Bool())
	case protoreflect.StringKind:
		return appendString(buf, v.String())
	case protoreflect.BytesKind:
		buf = append(buf, '[')
		for i, b := range v.Bytes() {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendUint(buf, uint64(b), 10)
		}
		return append(buf, ']')
	case protoreflect.EnumKind:
		return strconv.AppendInt(buf, int64(v.Enum()), 10)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.AppendInt(buf, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.AppendUint(buf, v.Uint(), 10)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(buf, "null"...)
		}
		return append(buf, encodeFloat(f, fd.Kind() == protoreflect.FloatKind).(json.Number)...)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return c.message(buf, v.Message())
	}
	return append(buf, "null"...)
}

// appendString quotes s as encoding/json does. Plain printable ASCII,
// nearly every string in a request, is copied; anything else goes through
// encoding/json itself, so the two can never disagree.
func appendString(buf []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= utf8.RuneSelf || strings.IndexByte(`"\<>&`, b) >= 0 {
			plain = false
			break
		}
	}
	if plain {
		buf = append(buf, '"')
		buf = append(buf, s...)
		return append(buf, '"')
	}
	q, err := json.Marshal(s)
	if err != nil {
		// encoding/json marshals every Go string; keep the output valid.
		return append(buf, `""`...)
	}
	return append(buf, q...)
}
