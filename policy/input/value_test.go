package input_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// sameInput fails unless the direct OPA value of m equals the conversion of
// Encode's document, both as a Rego value and in its JSON text (numbers
// keep their spelling: "1.0" stays "1.0").
func sameInput(t *testing.T, vs *input.Values, name string, m proto.Message) {
	t.Helper()
	sameCanonical(t, &input.Canonical{}, name, m)
	want, err := ast.InterfaceToValue(input.Encode(m))
	if err != nil {
		t.Fatal(err)
	}
	got := vs.Value(m)
	if ast.Compare(got, want) != 0 {
		t.Fatalf("%s: value differs\n got %v\nwant %v", name, got, want)
	}
	gj, err := ast.JSON(got)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := canon(t, gj), canon(t, input.Encode(m)); a != b {
		t.Fatalf("%s: JSON differs\n got %s\nwant %s", name, a, b)
	}
}

// sameCanonical fails unless Canonical writes exactly what encoding/json
// writes for Encode's document, twice (the second from the cached plan).
func sameCanonical(t *testing.T, c *input.Canonical, name string, m proto.Message) {
	t.Helper()
	want, err := json.Marshal(input.Encode(m))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if got := c.Append(nil, m); string(got) != string(want) {
			t.Fatalf("%s: canonical JSON differs\n got %s\nwant %s", name, got, want)
		}
	}
	sum := sha256.Sum256(want)
	if c.Digest(m) != hex.EncodeToString(sum[:]) {
		t.Fatalf("%s: digest differs", name)
	}
}

func TestValueMatchesEncode(t *testing.T) {
	vs := &input.Values{}
	yes := true
	for name, m := range map[string]proto.Message{
		"create": &agentpb.CreateContainerRequest{
			ContainerId: "c1",
			OCI: &agentpb.Spec{
				Mounts:      []*agentpb.Mount{{Destination: "/proc", Source: "proc", Type: "proc", Options: []string{"nosuid"}}},
				Annotations: map[string]string{"a": "b", "": "empty key"},
				Linux: &agentpb.Linux{
					Sysctl: map[string]string{"net.ipv4.ip_forward": "1"},
					Seccomp: &agentpb.LinuxSeccomp{Syscalls: []*agentpb.LinuxSyscall{
						{Names: []string{"read"}, ErrnoRet: &agentpb.LinuxSyscall_Errnoret{Errnoret: 1}},
						{Names: []string{"write"}},
					}},
				},
				Process: &agentpb.Process{User: &agentpb.User{UID: 4294967295, GID: 0}, OOMScoreAdj: -998},
			},
			Devices: []*agentpb.Device{{Type: "blk"}},
		},
		"optional set":   &agentpb.MemAgentMemcgConfig{Disabled: &yes},
		"optional unset": &agentpb.MemAgentMemcgConfig{},
		"bytes":          &agentpb.ReseedRandomDevRequest{Data: []byte{0, 1, 127, 128, 255}},
		"uint64 max":     wrapperspb.UInt64(math.MaxUint64),
		"int64 min":      wrapperspb.Int64(math.MinInt64),
		"int big":        wrapperspb.Int64(1 << 40),
		"double 1":       wrapperspb.Double(1),
		"double frac":    wrapperspb.Double(0.1),
		"double huge":    wrapperspb.Double(1e300),
		"double nan":     wrapperspb.Double(math.NaN()),
		"double inf":     wrapperspb.Double(math.Inf(-1)),
		"float":          wrapperspb.Float(3.25),
		"string":         wrapperspb.String("<&> \u2028 \xff"),
		"escapes":        wrapperspb.String("q\"b\\n\nt\tc\x01\x7f é 😀"),
		"map order":      &agentpb.Spec{Annotations: map[string]string{"b": "1", "a": "2", "B": "3", "a.b": "4", "a<": "5", "": "6"}},
		"copyfile":       &agentpb.CopyFileRequest{Path: "/x", Data: []byte("d"), FileMode: 0o100644},
	} {
		sameInput(t, vs, name, m)
		sameInput(t, vs, name+" (cached plan)", m)
	}
}

// Every agent request, empty, encodes identically both ways.
func TestValueMatchesEncodeOnEmptyRequests(t *testing.T) {
	vs := &input.Values{}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName("grpc.AgentService")
	if err != nil {
		t.Fatal(err)
	}
	ms := d.(protoreflect.ServiceDescriptor).Methods()
	for i := 0; i < ms.Len(); i++ {
		m, err := input.NewRequest(string(ms.Get(i).Input().Name()))
		if err != nil {
			t.Fatal(err)
		}
		sameInput(t, vs, string(ms.Get(i).Name()), m)
	}
}

// ForRequest gives CopyFile its derived input, as the generic path does.
func TestValuesForRequestCopyFile(t *testing.T) {
	vs := &input.Values{}
	req := &agentpb.CopyFileRequest{Path: "/p", FileMode: 0o120777, Data: []byte("target")}
	got, err := vs.ForRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := input.ForRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ast.InterfaceToValue(doc)
	if err != nil {
		t.Fatal(err)
	}
	if ast.Compare(got, want) != 0 {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := vs.ForRequest(&agentpb.CopyFileRequest{FileMode: 0o120777, Data: []byte{0xff}}); err == nil {
		t.Fatal("non-UTF-8 symlink target accepted")
	}
}

// Any wire message the host can send encodes identically both ways.
func FuzzValueMatchesEncode(f *testing.F) {
	seed, err := proto.Marshal(&agentpb.CreateContainerRequest{
		ContainerId: "c", OCI: &agentpb.Spec{Annotations: map[string]string{"k": "v"},
			Linux: &agentpb.Linux{Seccomp: &agentpb.LinuxSeccomp{Syscalls: []*agentpb.LinuxSyscall{{ErrnoRet: &agentpb.LinuxSyscall_Errnoret{Errnoret: 7}}}}}},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{})
	vs := &input.Values{}
	f.Fuzz(func(t *testing.T, wire []byte) {
		var m agentpb.CreateContainerRequest
		if err := proto.Unmarshal(wire, &m); err != nil {
			return
		}
		sameInput(t, vs, "fuzz", &m)
	})
}
