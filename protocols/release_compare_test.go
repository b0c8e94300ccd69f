package protocols_test

// Comparison of our descriptors with a Kata release's, compiled by protoc
// (ci/kata-compat.sh). The rule is the runtime's view: everything a release
// can send or call must be ours with the same number, type and shape; what
// we have beyond an older release is never sent by it.

import (
	"fmt"
	"sort"
	"testing"

	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// kataFiles are the release files our protos mirror (by proto path).
var kataFiles = []string{"agent.proto", "oci.proto", "types.proto", "health.proto", "csi.proto"}

// releaseDrift lists how the release in set differs from ours in a way a
// runtime of that release would notice, sorted.
func releaseDrift(ours descriptors, set *descriptorpb.FileDescriptorSet) ([]string, error) {
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("descriptor set: %w", err)
	}
	var drift []string
	add := func(format string, a ...any) { drift = append(drift, fmt.Sprintf(format, a...)) }
	var messages func(ms protoreflect.MessageDescriptors)
	enums := func(es protoreflect.EnumDescriptors) {
		for i := 0; i < es.Len(); i++ {
			e := es.Get(i)
			mine, ok := ours.enums[string(e.FullName())]
			if !ok {
				add("enum %s: missing", e.FullName())
				continue
			}
			for j := 0; j < e.Values().Len(); j++ {
				v := e.Values().Get(j)
				if mv := mine.Values().ByName(v.Name()); mv == nil || mv.Number() != v.Number() {
					add("enum %s: value %s = %d missing or renumbered", e.FullName(), v.Name(), v.Number())
				}
			}
		}
	}
	messages = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			mine, ok := ours.messages[string(m.FullName())]
			if !ok {
				add("message %s: missing", m.FullName())
				continue
			}
			for j := 0; j < m.Fields().Len(); j++ {
				f := m.Fields().Get(j)
				mf := mine.Fields().ByName(f.Name())
				if mf == nil {
					add("%s.%s: missing field", m.FullName(), f.Name())
					continue
				}
				want := wantField{string(f.Name()), int32(f.Number()), fieldKind(f), fieldLabel(f)}
				got := wantField{string(mf.Name()), int32(mf.Number()), fieldKind(mf), fieldLabel(mf)}
				if got != want || mf.IsPacked() != f.IsPacked() {
					add("%s.%s: ours %+v packed=%v, release %+v packed=%v", m.FullName(), f.Name(), got, mf.IsPacked(), want, f.IsPacked())
				}
			}
			enums(m.Enums())
			messages(m.Messages())
		}
	}
	for _, path := range kataFiles {
		fd, err := files.FindFileByPath(path)
		if err != nil {
			return nil, fmt.Errorf("release has no %s: %w", path, err)
		}
		messages(fd.Messages())
		enums(fd.Enums())
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			mine, ok := ours.services[string(s.FullName())]
			if !ok {
				add("service %s: missing", s.FullName())
				continue
			}
			for j := 0; j < s.Methods().Len(); j++ {
				m := s.Methods().Get(j)
				mm := mine.Methods().ByName(m.Name())
				if mm == nil {
					add("%s/%s: missing rpc", s.FullName(), m.Name())
					continue
				}
				if mm.Input().FullName() != m.Input().FullName() || mm.Output().FullName() != m.Output().FullName() {
					add("%s/%s: ours %s→%s, release %s→%s", s.FullName(), m.Name(), mm.Input().FullName(), mm.Output().FullName(), m.Input().FullName(), m.Output().FullName())
				}
			}
		}
	}
	sort.Strings(drift)
	return drift, nil
}

// ourSet is our own protos as a descriptor set, the shape protoc writes.
func ourSet() *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := 0; i < fd.Imports().Len(); i++ {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for fd := range wantFiles() {
		add(fd)
	}
	return set
}

// The comparison finds each kind of drift a release could show; the
// katacompat test runs it against real releases.
func TestReleaseDriftDetects(t *testing.T) {
	ours := collect(t)
	if drift, err := releaseDrift(ours, ourSet()); err != nil || len(drift) != 0 {
		t.Fatalf("our protos against themselves: %v, %v", drift, err)
	}
	find := func(set *descriptorpb.FileDescriptorSet, file, msg string) *descriptorpb.DescriptorProto {
		for _, f := range set.File {
			if f.GetName() != file {
				continue
			}
			for _, m := range f.MessageType {
				if m.GetName() == msg {
					return m
				}
			}
		}
		t.Fatalf("%s %s not in the set", file, msg)
		return nil
	}
	for name, mutate := range map[string]func(*descriptorpb.FileDescriptorSet){
		"renumbered field": func(s *descriptorpb.FileDescriptorSet) {
			find(s, "agent.proto", "CreateContainerRequest").Field[0].Number = new(int32(99))
		},
		"new field": func(s *descriptorpb.FileDescriptorSet) {
			m := find(s, "agent.proto", "CreateSandboxRequest")
			m.Field = append(m.Field, &descriptorpb.FieldDescriptorProto{
				Name: new("future"), Number: new(int32(50)), JsonName: new("future"),
				Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
			})
		},
		"new rpc": func(s *descriptorpb.FileDescriptorSet) {
			for _, f := range s.File {
				if f.GetName() == "agent.proto" {
					svc := f.Service[0]
					svc.Method = append(svc.Method, &descriptorpb.MethodDescriptorProto{
						Name: new("Future"), InputType: new(".google.protobuf.Empty"), OutputType: new(".google.protobuf.Empty"),
					})
				}
			}
		},
	} {
		set := ourSet()
		mutate(set)
		drift, err := releaseDrift(ours, set)
		if err != nil || len(drift) != 1 {
			t.Errorf("%s: drift %q, err %v; want exactly one finding", name, drift, err)
		}
	}
}
