package decisionlog

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// marshalled is the line body as the log wrote it before it had its own
// encoder: json.Marshal of the entry with the chain fields set.
func marshalled(e Entry, seq uint64, now time.Time, prev string) ([]byte, error) {
	e.Seq, e.Prev, e.Hash = seq, prev, ""
	e.Time = now.UTC().Format(time.RFC3339Nano)
	return json.Marshal(e)
}

func checkEncoding(t *testing.T, e Entry, seq uint64, now time.Time, prev string) {
	t.Helper()
	want, werr := marshalled(e, seq, now, prev)
	got, gerr := appendBody([]byte("prefix"), &e, seq, now, prev)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("json.Marshal error %v, appendBody error %v", werr, gerr)
	}
	if werr == nil && !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("appendBody\n%s\njson.Marshal\n%s", got, want)
	}
}

// The hand-written encoder writes the bytes encoding/json wrote, so
// lines keep their format and existing tools read them unchanged.
func TestEncodeMatchesJSON(t *testing.T) {
	yes, no := true, false
	now := time.Date(2026, 11, 30, 4, 5, 6, 789000000, time.FixedZone("x", 3600))
	for _, e := range []Entry{
		{},
		{Kind: KindDecision, Request: "ReadStreamRequest", InputSHA256: Genesis, PolicySHA256: Genesis, Allowed: &yes},
		{Kind: KindDecision, Request: "ExecProcessRequest", Allowed: &no, Message: `ExecProcessRequest is blocked by policy: "sh" <not> & allowed` + "\n\t\x01\u2028\xff"},
		{Kind: KindCommit, Request: "CreateContainerRequest", Committed: &no, Ops: json.RawMessage(` [ {"op":"add", "path":"/pstate/a<b", "value": 1} ] `)},
		{Kind: KindDecision, Ops: json.RawMessage(`{"unterminated`)},
		{Kind: KindPolicy, PolicySHA256: "x", Source: "initdata", Time: "ignored", Seq: 99, Hash: "ignored", Prev: "ignored"},
		{Kind: KindRotate, Message: "continues decisions.log.1"},
		{Kind: KindDecision, Request: "CreateContainerRequest", Allowed: &yes, Summary: &Summary{
			ContainerID: "c1", ContainerType: "container", Image: "registry.example/app@sha256:ab", ImageName: "app:<1>",
			Args: []string{"sh", "-c", "echo \"hi\" & exit\n"}, Truncated: true}},
		{Kind: KindDecision, Request: "ExecProcessRequest", Allowed: &no, Summary: &Summary{ContainerID: "c1", ExecID: "e1", Args: []string{"", "\xff"}, GrantNonce: "bm9uY2U"}},
		{Kind: KindDecision, Request: "SetPolicyRequest", Summary: &Summary{NewPolicySHA256: Genesis}},
		{Kind: KindDecision, Summary: &Summary{}},
		{Kind: KindDecision, Summary: &Summary{Args: []string{}, Truncated: true}},
	} {
		checkEncoding(t, e, 12345, now, Genesis)
	}
	checkEncoding(t, Entry{Kind: KindDecision}, 0, time.Unix(0, 0), "")
}

func FuzzEncode(f *testing.F) {
	f.Add("decision", "ReadStreamRequest", "msg \"quoted\" <tag>", []byte(`[{"op":"remove","path":"/x"}]`), uint8(1), uint64(7), int64(1764475506123456789))
	f.Add("", "", "\xff\xfe\u2029", []byte(`nul`), uint8(2), uint64(0), int64(0))
	f.Add("c1", "e1", "sh -c <x>", []byte(nil), uint8(0xff), uint64(3), int64(5))
	f.Add("", "", " ", []byte(nil), uint8(4), uint64(3), int64(5))
	f.Fuzz(func(t *testing.T, kind, request, message string, ops []byte, bools uint8, seq uint64, nanos int64) {
		yes, no := true, false
		e := Entry{Kind: kind, Request: request, Message: message, Source: request, InputSHA256: message, Ops: ops}
		switch bools % 3 {
		case 1:
			e.Allowed = &yes
		case 2:
			e.Committed = &no
		}
		if bools&4 != 0 {
			// A summary made of the same strings, each field present or
			// not as the bits say.
			pick := func(bit uint8, v string) string {
				if bools&bit != 0 {
					return v
				}
				return ""
			}
			e.Summary = &Summary{ContainerID: pick(8, kind), ExecID: pick(16, request), Image: pick(32, message),
				ImageName: request, GrantNonce: pick(64, kind), Truncated: bools&128 != 0}
			if len(message) > 0 {
				e.Summary.Args = strings.Split(message, string(message[0]))
			}
		}
		checkEncoding(t, e, seq, time.Unix(0, nanos), message)
	})
}

// BenchmarkSeal is sealing one decision line, without and with a
// CreateContainer-sized summary.
func BenchmarkSeal(b *testing.B) {
	yes := true
	e := Entry{Kind: KindDecision, Request: "CreateContainerRequest", InputSHA256: strings.Repeat("ab", 32), PolicySHA256: strings.Repeat("cd", 32), Allowed: &yes}
	sum := &Summary{ContainerID: strings.Repeat("c", 64), ContainerType: "container",
		Image: "registry.example/shop/app@sha256:" + strings.Repeat("ab", 32), ImageName: "registry.example/shop/app:v1",
		Args: []string{"/usr/local/bin/app", "--config", "/etc/app/config.yaml", "--listen", ":8080"}}
	now := time.Now()
	for _, tc := range []struct {
		name string
		sum  *Summary
	}{{"no-summary", nil}, {"summary", sum}} {
		b.Run(tc.name, func(b *testing.B) {
			e.Summary = tc.sum
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, _, err = appendSealed(buf[:0], &e, 1, now, Genesis); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
