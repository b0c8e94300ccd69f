// Package input turns agent requests into the JSON documents Kata-compatible
// Rego policies expect as `input`, and back.
//
// The shape is the one the Kata agent produces with serde over its
// rust-protobuf types, because generated policies (genpolicy's rules.rego)
// match on it field by field: every field is present even when zero, an unset
// message is null, enums are integers, bytes are arrays of numbers, maps are
// objects, and field names that are Rust keywords carry a trailing underscore
// (the OCI Mount's `type` is `type_`). protojson differs on every one of these
// points, so this package walks the messages with protoreflect itself.
package input

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Encode returns m as a generic JSON value: map[string]any, []any, string,
// bool, json.Number and nil. The result can be marshalled with encoding/json
// (which sorts object keys, giving a canonical byte form) or handed to OPA.
func Encode(m proto.Message) map[string]any {
	if m == nil {
		return nil
	}
	return encodeMessage(m.ProtoReflect())
}

func encodeMessage(m protoreflect.Message) map[string]any {
	fields := m.Descriptor().Fields()
	out := make(map[string]any, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			// rust-protobuf turns a oneof into one Option<enum> field named
			// after the oneof; serde tags the set variant with its
			// camel-cased field name.
			name := rustField(string(od.Name()))
			if _, done := out[name]; done {
				continue
			}
			set := m.WhichOneof(od)
			if set == nil {
				out[name] = nil
				continue
			}
			out[name] = map[string]any{variantName(string(set.Name())): encodeSingle(set, m.Get(set))}
			continue
		}
		name := rustField(string(fd.Name()))
		switch {
		case fd.IsList():
			out[name] = encodeList(fd, m.Get(fd).List())
		case fd.IsMap():
			out[name] = encodeMap(fd, m.Get(fd).Map())
		case fd.Message() != nil && !m.Has(fd):
			out[name] = nil
		case fd.HasOptionalKeyword() && !m.Has(fd):
			out[name] = nil
		default:
			out[name] = encodeSingle(fd, m.Get(fd))
		}
	}
	return out
}

func encodeList(fd protoreflect.FieldDescriptor, l protoreflect.List) []any {
	out := make([]any, l.Len())
	for i := range out {
		out[i] = encodeSingle(fd, l.Get(i))
	}
	return out
}

func encodeMap(fd protoreflect.FieldDescriptor, mp protoreflect.Map) map[string]any {
	out := make(map[string]any, mp.Len())
	vd := fd.MapValue()
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		out[k.String()] = encodeSingle(vd, v)
		return true
	})
	return out
}

func encodeSingle(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		b := v.Bytes()
		out := make([]any, len(b))
		for i, c := range b {
			out[i] = json.Number(strconv.Itoa(int(c)))
		}
		return out
	case protoreflect.EnumKind:
		return json.Number(strconv.FormatInt(int64(v.Enum()), 10))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return json.Number(strconv.FormatInt(v.Int(), 10))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return json.Number(strconv.FormatUint(v.Uint(), 10))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return encodeFloat(v.Float(), fd.Kind() == protoreflect.FloatKind)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return encodeMessage(v.Message())
	}
	return nil
}

// encodeFloat writes what serde_json writes: non-finite values become null,
// integral values keep a ".0".
func encodeFloat(f float64, single bool) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	bits := 64
	if single {
		bits = 32
	}
	s := strconv.FormatFloat(f, 'g', -1, bits)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return json.Number(s)
}

// rustKeywords are the identifiers rust-protobuf cannot use as field names;
// it appends an underscore to them, and serde keeps that spelling.
var rustKeywords = map[string]bool{
	"as": true, "async": true, "await": true, "break": true, "const": true, "continue": true,
	"crate": true, "dyn": true, "else": true, "enum": true, "extern": true, "false": true,
	"fn": true, "for": true, "if": true, "impl": true, "in": true, "let": true, "loop": true,
	"match": true, "mod": true, "move": true, "mut": true, "pub": true, "ref": true,
	"return": true, "self": true, "Self": true, "static": true, "struct": true, "super": true,
	"trait": true, "true": true, "type": true, "unsafe": true, "use": true, "where": true,
	"while": true, "abstract": true, "become": true, "box": true, "do": true, "final": true,
	"macro": true, "override": true, "priv": true, "typeof": true, "unsized": true,
	"virtual": true, "yield": true, "try": true,
}

// rustField is the JSON key Kata's serde output uses for a proto field name.
func rustField(name string) string {
	if rustKeywords[name] {
		return name + "_"
	}
	return name
}

// variantName is rust-protobuf's enum variant for a oneof member: the field
// name in UpperCamelCase ("errnoret" → "Errnoret", "foo_bar" → "FooBar").
func variantName(field string) string {
	var b strings.Builder
	for _, part := range strings.Split(field, "_") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]))
		b.WriteString(part[1:])
	}
	return b.String()
}
