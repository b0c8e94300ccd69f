package explain_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/policy/explain"
	"github.com/cocoon-tee/cocoon/policy/input"
)

func parse(t testing.TB, kind, doc string) explain.Request {
	t.Helper()
	r, err := explain.ParseRequest(kind, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// protojson (cocoonctl call) and the Kata input shape read as the same
// request; kinds may be rpc or message names; bad documents are errors.
func TestParseRequest(t *testing.T) {
	kata := `{"container_id":"c","OCI":{"Mounts":[{"destination":"/d","type_":"bind","source":"/s","options":[]}],"Process":{"Args":["/bin/sh"]}}}`
	pj := `{"containerId":"c","OCI":{"Mounts":[{"destination":"/d","type":"bind","source":"/s"}],"Process":{"Args":["/bin/sh"]}}}`
	a, b := parse(t, "CreateContainer", kata), parse(t, "CreateContainerRequest", pj)
	if a.Kind != "CreateContainerRequest" || b.Kind != a.Kind {
		t.Fatalf("kinds %q %q", a.Kind, b.Kind)
	}
	ja, _ := json.Marshal(a.Input)
	jb, _ := json.Marshal(b.Input)
	if string(ja) != string(jb) || !strings.Contains(string(ja), `"type_":"bind"`) {
		t.Fatalf("inputs differ:\n%s\n%s", ja, jb)
	}
	if a.Digest() == "" || a.Digest() != b.Digest() {
		t.Fatalf("digests %q %q", a.Digest(), b.Digest())
	}
	var c input.Canonical
	if a.Digest() != c.Digest(a.Message) {
		t.Fatal("digest is not the decision log's")
	}
	cf := parse(t, "CopyFile", `{"path":"/etc/x","file_size":3}`)
	if cf.Input["path"] != "/etc/x" || cf.Input["file_type"] != "Unknown" || cf.Digest() != "" {
		t.Fatalf("copyfile input %v", cf.Input)
	}
	for _, bad := range []struct{ kind, doc, want string }{
		{"CreateContainer", `[1]`, "neither protojson"},
		{"CreateContainer", `{"container_id": 5}`, "container_id"},
		{"NoSuchThing", `{}`, "unknown request kind"},
		{"CopyFile", `{} {}`, "trailing data"},
		{"CopyFile", `null`, "want a JSON object"},
	} {
		if _, err := explain.ParseRequest(bad.kind, []byte(bad.doc)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s %s: got %v, want %q", bad.kind, bad.doc, err, bad.want)
		}
	}
}

// FuzzParseRequest: any bytes give a request whose input encodes, or an
// error; never a panic.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"container_id":"c","OCI":{"Process":{"Args":["a"]}}}`,
		`{"containerId":"c","OCI":{"Mounts":[{"type":"bind"}]}}`,
		`{"OCI":{"Linux":{"Seccomp":{"Syscalls":[{"ErrnoRet":{"Errnoret":1}}]}}}}`,
		`{"storages":[{"driver":"image_guest_pull","options":[]}]}`, `null`, `[]`, `{"a":`,
	} {
		f.Add("CreateContainer", []byte(s))
	}
	f.Add("CopyFile", []byte(`{"path":"/x","file_mode":33188}`))
	f.Add("ExecProcess", []byte(`{"process":{"Args":["/bin/sh"],"User":{"UID":"1"}}}`))
	f.Fuzz(func(t *testing.T, kind string, doc []byte) {
		r, err := explain.ParseRequest(kind, doc)
		if err != nil {
			return
		}
		if _, err := json.Marshal(r.Input); err != nil {
			t.Fatalf("input does not encode: %v", err)
		}
		if r.Message != nil && r.Digest() == "" {
			t.Fatal("no digest")
		}
	})
}
