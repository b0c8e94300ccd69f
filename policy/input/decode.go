package input

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// MaxDocument bounds the JSON documents Decode accepts.
const MaxDocument = 16 << 20

// Decode fills m from a document in the Kata serde shape, the inverse of
// Encode. Like serde with `#[serde(default)]`, which Kata's generated types
// carry, missing fields keep their zero value and unknown keys are ignored,
// so the request fragments in Kata's test cases load as they do there.
// Type mismatches are errors naming the offending path.
func Decode(data []byte, m proto.Message) error {
	if len(data) > MaxDocument {
		return fmt.Errorf("document of %d bytes exceeds %d", len(data), MaxDocument)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("parse JSON: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("parse JSON: trailing data after the document")
	}
	return DecodeValue(v, m)
}

// DecodeValue is Decode over an already parsed value (numbers as json.Number).
func DecodeValue(v any, m proto.Message) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("$: want an object, got %s", kindOf(v))
	}
	return decodeMessage(obj, m.ProtoReflect(), "$")
}

func decodeMessage(obj map[string]any, m protoreflect.Message, path string) error {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if err := decodeOneof(obj, m, fd, od, path); err != nil {
				return err
			}
			continue
		}
		name := rustField(string(fd.Name()))
		raw, present := obj[name]
		if !present || raw == nil {
			continue
		}
		p := path + "." + name
		switch {
		case fd.IsList():
			arr, ok := raw.([]any)
			if !ok {
				return fmt.Errorf("%s: want an array, got %s", p, kindOf(raw))
			}
			l := m.Mutable(fd).List()
			for j, e := range arr {
				ep := p + "[" + strconv.Itoa(j) + "]"
				if fd.Message() != nil {
					if err := decodeInto(e, l.AppendMutable().Message(), ep); err != nil {
						return err
					}
					continue
				}
				val, err := decodeScalar(fd, e, ep)
				if err != nil {
					return err
				}
				l.Append(val)
			}
		case fd.IsMap():
			mo, ok := raw.(map[string]any)
			if !ok {
				return fmt.Errorf("%s: want an object, got %s", p, kindOf(raw))
			}
			if err := decodeMap(mo, m.Mutable(fd).Map(), fd, p); err != nil {
				return err
			}
		case fd.Message() != nil:
			if err := decodeInto(raw, m.Mutable(fd).Message(), p); err != nil {
				return err
			}
		default:
			val, err := decodeScalar(fd, raw, p)
			if err != nil {
				return err
			}
			m.Set(fd, val)
		}
	}
	return nil
}

func decodeOneof(obj map[string]any, m protoreflect.Message, fd protoreflect.FieldDescriptor, od protoreflect.OneofDescriptor, path string) error {
	raw := obj[rustField(string(od.Name()))]
	if raw == nil {
		return nil
	}
	p := path + "." + rustField(string(od.Name()))
	tagged, ok := raw.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: want an object tagged with the variant, got %s", p, kindOf(raw))
	}
	v, ok := tagged[variantName(string(fd.Name()))]
	if !ok {
		return nil
	}
	if fd.Message() != nil {
		return decodeInto(v, m.Mutable(fd).Message(), p)
	}
	val, err := decodeScalar(fd, v, p)
	if err != nil {
		return err
	}
	m.Set(fd, val)
	return nil
}

func decodeInto(raw any, m protoreflect.Message, path string) error {
	if raw == nil {
		return nil
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: want an object, got %s", path, kindOf(raw))
	}
	return decodeMessage(obj, m, path)
}

func decodeMap(obj map[string]any, mp protoreflect.Map, fd protoreflect.FieldDescriptor, path string) error {
	kd, vd := fd.MapKey(), fd.MapValue()
	for k, raw := range obj {
		p := path + "[" + strconv.Quote(k) + "]"
		key, err := parseKey(kd, k, p)
		if err != nil {
			return err
		}
		if vd.Message() != nil {
			v := mp.NewValue()
			if err := decodeInto(raw, v.Message(), p); err != nil {
				return err
			}
			mp.Set(key, v)
			continue
		}
		if raw == nil {
			continue
		}
		v, err := decodeScalar(vd, raw, p)
		if err != nil {
			return err
		}
		mp.Set(key, v)
	}
	return nil
}

func parseKey(kd protoreflect.FieldDescriptor, k, path string) (protoreflect.MapKey, error) {
	if kd.Kind() == protoreflect.StringKind {
		return protoreflect.ValueOfString(k).MapKey(), nil
	}
	v, err := decodeScalar(kd, json.Number(k), path)
	if err != nil {
		return protoreflect.MapKey{}, err
	}
	return v.MapKey(), nil
}

func decodeScalar(fd protoreflect.FieldDescriptor, raw any, path string) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		b, ok := raw.(bool)
		if !ok {
			return protoreflect.Value{}, fmt.Errorf("%s: want a boolean, got %s", path, kindOf(raw))
		}
		return protoreflect.ValueOfBool(b), nil
	case protoreflect.StringKind:
		s, ok := raw.(string)
		if !ok {
			return protoreflect.Value{}, fmt.Errorf("%s: want a string, got %s", path, kindOf(raw))
		}
		return protoreflect.ValueOfString(s), nil
	case protoreflect.BytesKind:
		arr, ok := raw.([]any)
		if !ok {
			return protoreflect.Value{}, fmt.Errorf("%s: want an array of byte values, got %s", path, kindOf(raw))
		}
		b := make([]byte, len(arr))
		for i, e := range arr {
			n, err := integer(e, 0, math.MaxUint8, path)
			if err != nil {
				return protoreflect.Value{}, err
			}
			b[i] = byte(n)
		}
		return protoreflect.ValueOfBytes(b), nil
	case protoreflect.EnumKind:
		n, err := integer(raw, math.MinInt32, math.MaxInt32, path)
		if err != nil {
			return protoreflect.Value{}, err
		}
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := integer(raw, math.MinInt32, math.MaxInt32, path)
		return protoreflect.ValueOfInt32(int32(n)), err
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := integer(raw, math.MinInt64, math.MaxInt64, path)
		return protoreflect.ValueOfInt64(n), err
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := unsigned(raw, math.MaxUint32, path)
		return protoreflect.ValueOfUint32(uint32(n)), err
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := unsigned(raw, math.MaxUint64, path)
		return protoreflect.ValueOfUint64(n), err
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		num, ok := raw.(json.Number)
		if !ok {
			return protoreflect.Value{}, fmt.Errorf("%s: want a number, got %s", path, kindOf(raw))
		}
		f, err := num.Float64()
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("%s: %w", path, err)
		}
		if fd.Kind() == protoreflect.FloatKind {
			return protoreflect.ValueOfFloat32(float32(f)), nil
		}
		return protoreflect.ValueOfFloat64(f), nil
	}
	return protoreflect.Value{}, fmt.Errorf("%s: unsupported field kind %s", path, fd.Kind())
}

func integer(raw any, lo, hi int64, path string) (int64, error) {
	num, ok := raw.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s: want an integer, got %s", path, kindOf(raw))
	}
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: %s is not an integer in [%d, %d]", path, num, lo, hi)
	}
	return n, nil
}

func unsigned(raw any, hi uint64, path string) (uint64, error) {
	num, ok := raw.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s: want an integer, got %s", path, kindOf(raw))
	}
	n, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil || n > hi {
		return 0, fmt.Errorf("%s: %s is not an integer in [0, %d]", path, num, hi)
	}
	return n, nil
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
