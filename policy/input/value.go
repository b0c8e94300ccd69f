package input

import (
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// Values builds the policy input of a request directly as an OPA value:
// the document Encode returns, as ast.InterfaceToValue would convert it,
// without the generic map in between. On the decision path that detour
// (and its garbage) cost about as much as the policy's cheaper rules.
//
// A Values caches, per message type, the field order and the object key
// terms; keys are immutable terms shared by every value it builds, as OPA
// shares its interned terms. It is safe for concurrent use.
type Values struct {
	plans sync.Map // protoreflect.MessageDescriptor → *messagePlan
}

type messagePlan struct {
	fields []fieldPlan
}

// fieldPlan is one key of the encoded object: a field, or a whole oneof.
type fieldPlan struct {
	key   *ast.Term
	fd    protoreflect.FieldDescriptor
	oneof protoreflect.OneofDescriptor
}

// Value returns m's policy input. A nil message is null.
func (vs *Values) Value(m proto.Message) ast.Value {
	if m == nil {
		return ast.NullValue
	}
	return vs.message(m.ProtoReflect())
}

// ForRequest is ForRequest as an OPA value.
func (vs *Values) ForRequest(req proto.Message) (ast.Value, error) {
	if _, ok := req.(*agentpb.CopyFileRequest); ok {
		doc, err := ForRequest(req)
		if err != nil {
			return nil, err
		}
		return ast.InterfaceToValue(doc)
	}
	return vs.Value(req), nil
}

func (vs *Values) plan(md protoreflect.MessageDescriptor) *messagePlan {
	if p, ok := vs.plans.Load(md); ok {
		return p.(*messagePlan)
	}
	fields := md.Fields()
	p := &messagePlan{fields: make([]fieldPlan, 0, fields.Len())}
	seen := map[protoreflect.Name]bool{}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if !seen[od.Name()] {
				seen[od.Name()] = true
				p.fields = append(p.fields, fieldPlan{key: ast.InternedTerm(rustField(string(od.Name()))), oneof: od})
			}
			continue
		}
		p.fields = append(p.fields, fieldPlan{key: ast.InternedTerm(rustField(string(fd.Name()))), fd: fd})
	}
	actual, _ := vs.plans.LoadOrStore(md, p)
	return actual.(*messagePlan)
}

func (vs *Values) message(m protoreflect.Message) ast.Value {
	p := vs.plan(m.Descriptor())
	obj := ast.NewObjectWithCapacity(len(p.fields))
	for _, f := range p.fields {
		obj.Insert(f.key, vs.field(m, f))
	}
	return obj
}

func (vs *Values) field(m protoreflect.Message, f fieldPlan) *ast.Term {
	if f.oneof != nil {
		set := m.WhichOneof(f.oneof)
		if set == nil {
			return ast.InternedNullTerm
		}
		variant := ast.NewObject([2]*ast.Term{ast.InternedTerm(variantName(string(set.Name()))), vs.single(set, m.Get(set))})
		return ast.NewTerm(variant)
	}
	fd := f.fd
	switch {
	case fd.IsList():
		l := m.Get(fd).List()
		arr := make([]*ast.Term, l.Len())
		for i := range arr {
			arr[i] = vs.single(fd, l.Get(i))
		}
		return ast.ArrayTerm(arr...)
	case fd.IsMap():
		mp := m.Get(fd).Map()
		obj := ast.NewObjectWithCapacity(mp.Len())
		vd := fd.MapValue()
		mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			obj.Insert(ast.InternedTerm(k.String()), vs.single(vd, v))
			return true
		})
		return ast.NewTerm(obj)
	case fd.Message() != nil && !m.Has(fd), fd.HasOptionalKeyword() && !m.Has(fd):
		return ast.InternedNullTerm
	}
	return vs.single(fd, m.Get(fd))
}

func (vs *Values) single(fd protoreflect.FieldDescriptor, v protoreflect.Value) *ast.Term {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return ast.InternedTerm(v.Bool())
	case protoreflect.StringKind:
		return ast.InternedTerm(v.String())
	case protoreflect.BytesKind:
		b := v.Bytes()
		arr := make([]*ast.Term, len(b))
		for i, c := range b {
			arr[i] = ast.InternedTerm(int(c))
		}
		return ast.ArrayTerm(arr...)
	case protoreflect.EnumKind:
		return intTerm(int64(v.Enum()))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return intTerm(v.Int())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if u := v.Uint(); u <= math.MaxInt64 {
			return intTerm(int64(u))
		}
		return ast.NewTerm(ast.Number(strconv.FormatUint(v.Uint(), 10)))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return floatTerm(v.Float(), fd.Kind() == protoreflect.FloatKind)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return ast.NewTerm(vs.message(v.Message()))
	}
	return ast.InternedNullTerm
}

// intTerm is an integer in the form InterfaceToValue gives a json.Number:
// interned when OPA interns it, else the decimal text.
func intTerm(n int64) *ast.Term {
	s := strconv.FormatInt(n, 10)
	if t := ast.InternedIntNumberTermFromString(s); t != nil {
		return t
	}
	return ast.NewTerm(ast.Number(s))
}

// floatTerm mirrors encodeFloat: null for non-finite values, a ".0" on
// integral ones.
func floatTerm(f float64, single bool) *ast.Term {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return ast.InternedNullTerm
	}
	bits := 64
	if single {
		bits = 32
	}
	s := strconv.FormatFloat(f, 'g', -1, bits)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return ast.NewTerm(ast.Number(s))
}
