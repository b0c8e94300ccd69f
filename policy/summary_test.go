package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

func TestSummarize(t *testing.T) {
	long := strings.Repeat("x", decisionlog.MaxSummaryString+10)
	// 255 ASCII bytes, then a 3-byte rune that does not fit whole.
	runeCut := strings.Repeat("a", decisionlog.MaxSummaryString-1) + "€"
	many := make([]string, decisionlog.MaxSummaryArgs+4)
	for i := range many {
		many[i] = "a"
	}
	grant := &ExecGrant{Nonce: "bm9uY2U", Input: map[string]any{"argv": []any{"ps", "-ef"}}}
	ctr := func(mod func(*agentpb.CreateContainerRequest)) *agentpb.CreateContainerRequest {
		r := &agentpb.CreateContainerRequest{
			ContainerId: "app",
			Storages: []*agentpb.Storage{
				nil,
				{Driver: "local", Source: "local"},
				{Driver: "image_guest_pull", Source: "registry.example/app@sha256:ab", MountPoint: "/run/kata-containers/app/rootfs"},
			},
			OCI: &agentpb.Spec{
				Process: &agentpb.Process{Args: []string{"sh", "-c", "echo hi"}, Env: []string{"TOKEN=secret"}},
				Annotations: map[string]string{
					"io.kubernetes.cri.container-type": "container",
					"io.kubernetes.cri.image-name":     "registry.example/app:v1",
					"io.kubernetes.cri.sandbox-name":   "web",
				},
				Mounts: []*agentpb.Mount{{Destination: "/secret", Source: "/run/secret", Type: "bind"}},
			},
		}
		if mod != nil {
			mod(r)
		}
		return r
	}
	for name, tc := range map[string]struct {
		req   proto.Message
		grant *ExecGrant
		want  *decisionlog.Summary
	}{
		"create container": {req: ctr(nil), want: &decisionlog.Summary{ContainerID: "app", ContainerType: "container",
			Image: "registry.example/app@sha256:ab", ImageName: "registry.example/app:v1", Args: []string{"sh", "-c", "echo hi"}}},
		"pause (CRI-O annotations)": {req: ctr(func(r *agentpb.CreateContainerRequest) {
			r.Storages = []*agentpb.Storage{{Driver: "image_guest_pull", Source: "pause"}}
			r.OCI.Annotations = map[string]string{"io.kubernetes.cri-o.ContainerType": "sandbox", "io.kubernetes.cri-o.ImageName": "pause:3.9"}
			r.OCI.Process.Args = []string{"/pause"}
		}), want: &decisionlog.Summary{ContainerID: "app", ContainerType: "sandbox", Image: "pause", ImageName: "pause:3.9", Args: []string{"/pause"}}},
		"host-pulled rootfs, no spec": {req: &agentpb.CreateContainerRequest{ContainerId: "app", Storages: []*agentpb.Storage{{Driver: "virtio-fs", Source: "shared"}}},
			want: &decisionlog.Summary{ContainerID: "app"}},
		"no process": {req: ctr(func(r *agentpb.CreateContainerRequest) { r.OCI.Process = nil }), want: &decisionlog.Summary{ContainerID: "app", ContainerType: "container",
			Image: "registry.example/app@sha256:ab", ImageName: "registry.example/app:v1"}},
		"bounded": {req: ctr(func(r *agentpb.CreateContainerRequest) {
			r.ContainerId = long
			r.Storages[2].Source = runeCut
			r.OCI.Process.Args = many
		}), want: &decisionlog.Summary{ContainerID: long[:decisionlog.MaxSummaryString], ContainerType: "container",
			Image: runeCut[:decisionlog.MaxSummaryString-1], ImageName: "registry.example/app:v1", Args: many[:decisionlog.MaxSummaryArgs], Truncated: true}},
		"long argument": {req: &agentpb.ExecProcessRequest{ContainerId: "app", ExecId: "e1", Process: &agentpb.Process{Args: []string{"sh", long}}},
			want: &decisionlog.Summary{ContainerID: "app", ExecID: "e1", Args: []string{"sh", long[:decisionlog.MaxSummaryString]}, Truncated: true}},
		"exec": {req: &agentpb.ExecProcessRequest{ContainerId: "app", ExecId: "e1", Process: &agentpb.Process{Args: []string{"id"}, Env: []string{"A=b"}}},
			want: &decisionlog.Summary{ContainerID: "app", ExecID: "e1", Args: []string{"id"}}},
		"exec without process": {req: &agentpb.ExecProcessRequest{ContainerId: "app", ExecId: "e1"},
			want: &decisionlog.Summary{ContainerID: "app", ExecID: "e1"}},
		"granted exec: the granted argv, not the token": {req: &agentpb.ExecProcessRequest{ContainerId: "app", ExecId: "e2",
			Process: &agentpb.Process{Args: []string{"cocoon-exec", "cocoon-grant.v1.payload.sig"}}}, grant: grant,
			want: &decisionlog.Summary{ContainerID: "app", ExecID: "e2", Args: []string{"ps", "-ef"}, GrantNonce: "bm9uY2U"}},
		"grant with a malformed argv": {req: &agentpb.ExecProcessRequest{ContainerId: "app", ExecId: "e3"},
			grant: &ExecGrant{Nonce: "n", Input: map[string]any{"argv": []any{"ps", 1}}},
			want:  &decisionlog.Summary{ContainerID: "app", ExecID: "e3", GrantNonce: "n", Truncated: true}},
		"set policy": {req: &agentpb.SetPolicyRequest{Policy: "package agent_policy\n"},
			want: &decisionlog.Summary{NewPolicySHA256: Digest("package agent_policy\n")}},
		"stream read":  {req: &agentpb.ReadStreamRequest{ContainerId: "app", ExecId: "app"}},
		"wait process": {req: &agentpb.WaitProcessRequest{ContainerId: "app"}},
		"copy file":    {req: &agentpb.CopyFileRequest{Path: "/x"}},
	} {
		t.Run(name, func(t *testing.T) {
			got := summarize(tc.req, tc.grant)
			if !summaryEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func summaryEqual(a, b *decisionlog.Summary) bool { return reflect.DeepEqual(a, b) }

// Whatever the host sends, a summary stays within its bounds, is valid
// UTF-8 and says when it was cut.
func FuzzSummarize(f *testing.F) {
	for _, m := range []proto.Message{
		&agentpb.CreateContainerRequest{ContainerId: "c", Storages: []*agentpb.Storage{{Driver: "image_guest_pull", Source: "img"}},
			OCI: &agentpb.Spec{Process: &agentpb.Process{Args: []string{"sh"}}, Annotations: map[string]string{"io.kubernetes.cri.image-name": "img"}}},
		&agentpb.ExecProcessRequest{ContainerId: "c", ExecId: "e", Process: &agentpb.Process{Args: []string{"id", "-u"}}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, exec bool) {
		var m proto.Message = &agentpb.CreateContainerRequest{}
		if exec {
			m = &agentpb.ExecProcessRequest{}
		}
		if proto.Unmarshal(b, m) != nil {
			return // the server answers INVALID_ARGUMENT before the gate
		}
		s := summarize(m, nil)
		if s == nil {
			t.Fatal("no summary")
		}
		if len(s.Args) > decisionlog.MaxSummaryArgs {
			t.Fatalf("%d args", len(s.Args))
		}
		for _, v := range append([]string{s.ContainerID, s.ExecID, s.ContainerType, s.Image, s.ImageName}, s.Args...) {
			if len(v) > decisionlog.MaxSummaryString || !utf8.ValidString(v) {
				t.Fatalf("value %q", v)
			}
		}
		var id string
		var args []string
		switch r := m.(type) {
		case *agentpb.CreateContainerRequest:
			id, args = r.ContainerId, r.GetOCI().GetProcess().GetArgs()
		case *agentpb.ExecProcessRequest:
			id, args = r.ContainerId, r.GetProcess().GetArgs()
		}
		long := len(id) > decisionlog.MaxSummaryString || len(args) > decisionlog.MaxSummaryArgs
		for _, a := range args {
			long = long || len(a) > decisionlog.MaxSummaryString
		}
		if long && !s.Truncated {
			t.Fatal("a value was cut without saying so")
		}
		if !strings.HasPrefix(id, s.ContainerID) {
			t.Fatalf("container id %q is not a prefix of %q", s.ContainerID, id)
		}
	})
}

// The gate writes the summary into the decision entry of the requests
// audit lists, allowed or denied, and into no other entry.
func TestGateRecordsSummary(t *testing.T) {
	text, err := Builtin(AllowAll)
	if err != nil {
		t.Fatal(err)
	}
	text = strings.Replace(text, "default ExecProcessRequest := true", "default ExecProcessRequest := false", 1)
	path := filepath.Join(t.TempDir(), "decisions.log")
	dl, err := decisionlog.Open(path, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	e := NewEngine(loadText(t, text), dl, nil)
	ctx := context.Background()
	gate := func(method string, req proto.Message) {
		t.Helper()
		finish, _ := e.Gate(ctx, method, req)
		if finish != nil {
			finish(nil)
		}
	}
	gate("CreateContainer", &agentpb.CreateContainerRequest{ContainerId: "app",
		OCI: &agentpb.Spec{Process: &agentpb.Process{Args: []string{"sh", "-c", "true"}, Env: []string{"PASSWORD=hunter2"}}}})
	gate("ReadStdout", &agentpb.ReadStreamRequest{ContainerId: "app", ExecId: "app", Len: 1})
	gate("ExecProcess", &agentpb.ExecProcessRequest{ContainerId: "app", ExecId: "e1", Process: &agentpb.Process{Args: []string{"id"}}})
	gate("SetPolicy", &agentpb.SetPolicyRequest{Policy: text})
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decisionlog.Verify([]decisionlog.Source{{Name: path, R: bytes.NewReader(raw)}}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("hunter2")) {
		t.Fatal("an environment value reached the decision log")
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var en decisionlog.Entry
		if err := json.Unmarshal([]byte(line), &en); err != nil {
			t.Fatal(err)
		}
		if en.Summary != nil && en.Kind != decisionlog.KindDecision {
			t.Errorf("a %s entry has a summary: %s", en.Kind, line)
		}
		if en.Kind == decisionlog.KindDecision {
			b, _ := json.Marshal(en.Summary)
			got[en.Request] = fmt.Sprintf("%v %s", *en.Allowed, b)
		}
	}
	want := map[string]string{
		"CreateContainerRequest": `true {"container_id":"app","args":["sh","-c","true"]}`,
		"ReadStreamRequest":      "true null",
		"ExecProcessRequest":     `false {"container_id":"app","exec_id":"e1","args":["id"]}`,
		"SetPolicyRequest":       `true {"new_policy_sha256":"` + Digest(text) + `"}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decisions\n%v\nwant\n%v", got, want)
	}
}

// BenchmarkSummarizeCreateContainer is what building a summary adds to a
// CreateContainer decision (decisionlog's BenchmarkSeal measures writing
// it into the line).
func BenchmarkSummarizeCreateContainer(b *testing.B) {
	r := &agentpb.CreateContainerRequest{
		ContainerId: strings.Repeat("c", 64),
		Storages:    []*agentpb.Storage{{Driver: "image_guest_pull", Source: "registry.example/shop/app@sha256:" + strings.Repeat("ab", 32)}},
		OCI: &agentpb.Spec{
			Process: &agentpb.Process{Args: []string{"/usr/local/bin/app", "--config", "/etc/app/config.yaml", "--listen", ":8080"}},
			Annotations: map[string]string{
				"io.kubernetes.cri.container-type": "container",
				"io.kubernetes.cri.image-name":     "registry.example/shop/app:v1",
			},
		},
	}
	b.ReportAllocs()
	for b.Loop() {
		if s := summarize(r, nil); len(s.Args) != 5 {
			b.Fatal(s)
		}
	}
}
