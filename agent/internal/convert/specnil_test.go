package convert

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// The host builds the OCI spec. Every message field in it may be missing and
// every repeated message field may hold a null entry (a Go caller can build
// one even though the wire cannot): the conversion must refuse or accept,
// never panic.

// fill sets every message field reachable from v to an empty message and gives
// every repeated message field one empty entry.
func fill(v reflect.Value, depth int) {
	if depth > 12 {
		panic("message nesting deeper than the OCI protos have")
	}
	st := v.Elem()
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		if !st.Type().Field(i).IsExported() {
			continue
		}
		switch {
		case isMsgPtr(f.Type()):
			f.Set(reflect.New(f.Type().Elem()))
			fill(f, depth+1)
		case f.Kind() == reflect.Slice && isMsgPtr(f.Type().Elem()):
			e := reflect.New(f.Type().Elem().Elem())
			fill(e, depth+1)
			f.Set(reflect.Append(reflect.MakeSlice(f.Type(), 0, 1), e))
		}
	}
}

func isMsgPtr(t reflect.Type) bool {
	return t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && t.Implements(reflect.TypeOf((*proto.Message)(nil)).Elem())
}

// nilSite is one place in a message tree that can hold a null message.
type nilSite struct {
	path string
	list bool // an entry of a repeated field rather than a field
	set  func(root reflect.Value)
}

// nilSites lists every place under v that holds a message and so could hold
// a null instead, parents before their children; set finds the place again
// by the same route in another tree of the same shape.
func nilSites(v reflect.Value, path string, get func(reflect.Value) reflect.Value) []nilSite {
	var out []nilSite
	st := v.Elem()
	for i := 0; i < st.NumField(); i++ {
		sf := st.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		f := st.Field(i)
		idx := i
		field := func(root reflect.Value) reflect.Value { return get(root).Elem().Field(idx) }
		name := strings.TrimPrefix(path+"."+sf.Name, ".")
		switch {
		case isMsgPtr(f.Type()) && !f.IsNil():
			out = append(out, nilSite{path: name, set: nullAt(field)})
			out = append(out, nilSites(f, name, field)...)
		case f.Kind() == reflect.Slice && isMsgPtr(f.Type().Elem()):
			for j := 0; j < f.Len(); j++ {
				jdx := j
				entry := func(root reflect.Value) reflect.Value { return field(root).Index(jdx) }
				ename := fmt.Sprintf("%s[%d]", name, j)
				out = append(out, nilSite{path: ename, list: true, set: nullAt(entry)})
				if !f.Index(j).IsNil() {
					out = append(out, nilSites(f.Index(j), ename, entry)...)
				}
			}
		}
	}
	return out
}

func nullAt(at func(reflect.Value) reflect.Value) func(reflect.Value) {
	return func(root reflect.Value) {
		v := at(root)
		v.Set(reflect.Zero(v.Type()))
	}
}

func fullSpec() *agentpb.Spec {
	s := &agentpb.Spec{}
	fill(reflect.ValueOf(s), 0)
	return s
}

// convert runs SpecFromProto and turns a panic into a test failure.
func convert(t *testing.T, s *agentpb.Spec) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("SpecFromProto panicked: %v", p)
		}
	}()
	_, err = SpecFromProto(s)
	return err
}

func TestSpecFromProtoNilFields(t *testing.T) {
	if err := convert(t, fullSpec()); err != nil {
		t.Fatalf("spec with every message present but empty: %v", err)
	}
	// A container cannot be made without these; Kata's agent refuses too.
	required := map[string]bool{"Process": true, "Root": true, "Linux": true}
	// Hooks are dropped and the other platforms never read.
	ignored := []string{"Hooks", "Solaris", "Windows"}

	sites := nilSites(reflect.ValueOf(fullSpec()), "", func(r reflect.Value) reflect.Value { return r })
	found := map[string]bool{}
	for _, site := range sites {
		found[site.path] = true
	}
	for _, deep := range []string{"Process.Rlimits[0]", "Linux.Resources.BlockIO.ThrottleReadBpsDevice[0]", "Linux.Seccomp.Syscalls[0].Args[0]", "Linux.Resources.Network.Priorities[0]"} {
		if !found[deep] {
			t.Fatalf("the walk missed %s; it found %d sites", deep, len(sites))
		}
	}
	for _, site := range sites {
		t.Run(site.path, func(t *testing.T) {
			s := fullSpec()
			site.set(reflect.ValueOf(s))
			err := convert(t, s)
			top := strings.SplitN(site.path, ".", 2)[0]
			top = strings.TrimSuffix(top, "[0]")
			switch {
			case slicesContains(ignored, top):
				if err != nil {
					t.Fatalf("null in an ignored section refused: %v", err)
				}
			case required[site.path], site.list:
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("got %v, want InvalidArgument", err)
				}
				if !strings.Contains(err.Error(), "null") && !strings.Contains(err.Error(), "no "+site.path) {
					t.Fatalf("message %q does not say what is missing", err)
				}
			default:
				if err != nil {
					t.Fatalf("optional field left out refused: %v", err)
				}
			}
		})
	}
	if err := convert(t, nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("null spec: %v", err)
	}
}

func slicesContains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// The conversions ExecProcess and UpdateContainer use refuse null input.
func TestProcessAndResourcesNil(t *testing.T) {
	if _, err := ProcessFromProto(nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("null process: %v", err)
	}
	if _, err := ResourcesFromProto(nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("null resources: %v", err)
	}
}

// FuzzSpecFromProtoNulls decodes a spec from the fuzzer's bytes, then nulls
// the sites the mask picks: the wire alone cannot produce null entries.
func FuzzSpecFromProtoNulls(f *testing.F) {
	for _, s := range []*agentpb.Spec{
		{},
		{Linux: &agentpb.Linux{}},
		{Process: &agentpb.Process{}, Root: &agentpb.Root{}},
		{Process: &agentpb.Process{Args: []string{"a"}}, Root: &agentpb.Root{Path: "/r"}, Linux: &agentpb.Linux{Resources: &agentpb.LinuxResources{}, Seccomp: &agentpb.LinuxSeccomp{}}},
		fullSpec(),
	} {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint64(0))
		f.Add(b, ^uint64(0))
		f.Add(b, uint64(0x5555555555555555))
	}
	f.Fuzz(func(t *testing.T, data []byte, mask uint64) {
		var p agentpb.Spec
		if proto.Unmarshal(data, &p) != nil {
			return
		}
		// Sites are listed parent first; nulling a parent first would hide
		// its children, so apply from the deepest end.
		sites := nilSites(reflect.ValueOf(&p), "", func(r reflect.Value) reflect.Value { return r })
		for i := len(sites) - 1; i >= 0; i-- {
			if mask&(1<<(uint(i)%64)) != 0 {
				sites[i].set(reflect.ValueOf(&p))
			}
		}
		s, err := SpecFromProto(&p)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("refused with %v, want InvalidArgument", err)
			}
			return
		}
		if s.Process == nil || s.Root == nil || s.Linux == nil {
			t.Fatalf("accepted a spec without process, root or linux: %+v", s)
		}
	})
}
