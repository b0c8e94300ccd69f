package input_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

func canon(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEncodeShapes(t *testing.T) {
	req := &agentpb.CreateContainerRequest{
		ContainerId: "c1",
		OCI: &agentpb.Spec{
			Mounts:  []*agentpb.Mount{{Destination: "/proc", Source: "proc", Type: "proc"}},
			Linux:   &agentpb.Linux{Seccomp: &agentpb.LinuxSeccomp{Syscalls: []*agentpb.LinuxSyscall{{Names: []string{"read"}, ErrnoRet: &agentpb.LinuxSyscall_Errnoret{Errnoret: 1}}}}},
			Process: &agentpb.Process{User: &agentpb.User{UID: 4294967295}},
		},
		Devices: []*agentpb.Device{{Type: "blk"}},
	}
	got := canon(t, input.Encode(req))
	for _, want := range []string{
		`"type_":"proc"`, `"type_":"blk"`, `"string_user":null`, `"Hooks":null`,
		`"ErrnoRet":{"Errnoret":1}`, `"UID":4294967295`, `"storages":[]`, `"Annotations":{}`,
		`"sandbox_pidns":false`, `"stdin_port":0`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("encoding lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"type":`) {
		t.Errorf("unescaped type field: %s", got)
	}
	// bytes as arrays of numbers, enums as integers.
	got = canon(t, input.Encode(&agentpb.ReseedRandomDevRequest{Data: []byte{0, 255}}))
	if got != `{"data":[0,255]}` {
		t.Errorf("bytes: %s", got)
	}
}

func TestRequestNames(t *testing.T) {
	for method, want := range map[string]string{
		"ReadStdout": "ReadStreamRequest", "ReadStderr": "ReadStreamRequest", "WriteStdin": "WriteStreamRequest",
		"GetGuestDetails": "GuestDetailsRequest", "GetVolumeStats": "VolumeStatsRequest",
		"MemAgentMemcgSet": "MemAgentMemcgConfig", "MemAgentCompactSet": "MemAgentCompactConfig",
		"CreateContainer": "CreateContainerRequest", "SetPolicy": "SetPolicyRequest",
	} {
		got, err := input.RequestName(method)
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", method, got, err, want)
		}
	}
	if _, err := input.RequestName("Nope"); err == nil {
		t.Error("unknown method accepted")
	}
}

func TestCopyFileInput(t *testing.T) {
	for _, tc := range []struct {
		mode   uint32
		data   []byte
		typ    string
		target any
	}{
		{0o100644, []byte("file content"), "Regular", nil},
		{0o040755, nil, "Directory", nil},
		{0o120777, []byte("..data/foo"), "Symlink", "..data/foo"},
		{0o140777, nil, "Unknown", nil},
		{0, nil, "Unknown", nil},
	} {
		doc, err := input.CopyFile(&agentpb.CopyFileRequest{Path: "/p", FileMode: tc.mode, Data: tc.data, FileSize: 12, Uid: -1})
		if err != nil {
			t.Fatal(err)
		}
		if doc["file_type"] != tc.typ || doc["symlink_target"] != tc.target {
			t.Errorf("mode %o: %v", tc.mode, doc)
		}
		if _, has := doc["data"]; has {
			t.Error("data leaked into the input")
		}
		if canon(t, doc["uid"]) != "-1" || canon(t, doc["file_size"]) != "12" {
			t.Errorf("numbers: %v", doc)
		}
	}
	if _, err := input.CopyFile(&agentpb.CopyFileRequest{FileMode: 0o120777, Data: []byte{0, 0xff}}); err == nil {
		t.Error("non-UTF-8 symlink target accepted")
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, doc := range []string{
		`[]`, `{"container_id": 5}`, `{"OCI": "x"}`, `{"OCI": {"Process": {"User": {"UID": -1}}}}`,
		`{"OCI": {"Process": {"User": {"UID": 4294967296}}}}`, `{"devices": {}}`, `{"storages": [1]}`,
		`{"OCI": {"Annotations": {"a": 1}}}`, `{} {}`, `{`,
	} {
		if err := input.Decode([]byte(doc), &agentpb.CreateContainerRequest{}); err == nil {
			t.Errorf("%s: accepted", doc)
		}
	}
	if err := input.Decode([]byte(`{"data": [256]}`), &agentpb.ReseedRandomDevRequest{}); err == nil {
		t.Error("byte 256 accepted")
	}
}

// Encode and Decode are inverses on what Encode produces.
func FuzzEncodeDecode(f *testing.F) {
	f.Add(`{"container_id":"c","OCI":{"Mounts":[{"type_":"bind","options":["ro"]}],"Annotations":{"k":"v"}}}`)
	f.Add(`{"OCI":{"Linux":{"Seccomp":{"Syscalls":[{"ErrnoRet":{"Errnoret":3},"Args":[{"Index":18446744073709551615}]}]}}}}`)
	f.Add(`{"devices":[{"type_":"blk","options":[]}],"sandbox_pidns":true,"string_user":{"uid":"0"}}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var m agentpb.CreateContainerRequest
		if err := input.Decode([]byte(doc), &m); err != nil {
			return
		}
		first := canon(t, input.Encode(&m))
		var again agentpb.CreateContainerRequest
		if err := input.Decode([]byte(first), &again); err != nil {
			t.Fatalf("re-decode %s: %v", first, err)
		}
		if second := canon(t, input.Encode(&again)); second != first {
			t.Fatalf("round trip differs:\n%s\n%s", first, second)
		}
	})
}
