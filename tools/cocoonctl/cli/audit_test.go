package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/eventlog"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// podLogs writes a decision log and a measurement log the way the agent
// does: policy loaded and measured, a container created, a granted exec,
// a SetPolicy with its head measured, more requests, teardown head.
type podLogs struct {
	dir, log, events string
	heads            []string
}

func newPodLogs(t *testing.T) *podLogs {
	t.Helper()
	dir := t.TempDir()
	p := &podLogs{dir: filepath.Join(dir, "decisions"), events: filepath.Join(dir, "events.bin")}
	p.log = filepath.Join(p.dir, "decisions.log")
	l, err := decisionlog.Open(p.log, decisionlog.Options{MaxBytes: 4096, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ev, err := eventlog.Open(p.events, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	yes, no := true, false
	must := func(h string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	measure := func(op, content string) {
		t.Helper()
		if err := ev.Record(eventlog.DomainCocoon, op, content); err != nil {
			t.Fatal(err)
		}
	}
	pol1, pol2 := strings.Repeat("1", 64), strings.Repeat("2", 64)
	must(l.Append(decisionlog.Entry{Kind: decisionlog.KindPolicy, PolicySHA256: pol1, Source: "initdata"}))
	measure(eventlog.OpLoadPolicy, "sha256:"+pol1)
	ops := json.RawMessage(`[{"op":"add","path":"/pstate/c1","value":0}]`)
	// The summaries are what the agent's gate records (policy/summary.go);
	// the last CreateContainer has none, as entries written before
	// summaries existed.
	must(l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "CreateContainerRequest", InputSHA256: "aa01", Allowed: &yes, Ops: ops,
		Summary: &decisionlog.Summary{ContainerID: "app", ContainerType: "container", Image: "registry.example/app@sha256:ab",
			ImageName: "registry.example/app:v1", Args: []string{"sh", "-c", "echo \x1b[2J; exec app"}}}))
	must(l.Append(decisionlog.Entry{Kind: decisionlog.KindCommit, Request: "CreateContainerRequest", InputSHA256: "aa01", Committed: &yes}))
	must(l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "ReadStreamRequest", InputSHA256: "aa02", Allowed: &no}))
	execOps := json.RawMessage(`[{"op":"add","path":"` + ExecNoncePath + `MDEyMzQ1Njc4OWFiY2RlZg","value":1750000300}]`)
	must(l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "ExecProcessRequest", InputSHA256: "aa03", Allowed: &yes, Ops: execOps,
		Summary: &decisionlog.Summary{ContainerID: "app", ExecID: "e1", Args: []string{"ps", "-ef"}, GrantNonce: "MDEyMzQ1Njc4OWFiY2RlZg"}}))
	must(l.Append(decisionlog.Entry{Kind: decisionlog.KindCommit, Request: "ExecProcessRequest", InputSHA256: "aa03", Committed: &yes}))
	must(l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "SetPolicyRequest", InputSHA256: "aa04", Allowed: &yes,
		Summary: &decisionlog.Summary{NewPolicySHA256: pol2}}))
	h := must(l.Append(decisionlog.Entry{Kind: decisionlog.KindPolicy, PolicySHA256: pol2, Source: "SetPolicy"}))
	measure(eventlog.OpSetPolicy, "sha256:"+pol2)
	measure(eventlog.OpDecisionsHead, "sha256:"+h)
	p.heads = append(p.heads, h)
	for range 20 { // enough to rotate
		must(l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "StatsContainerRequest", InputSHA256: "aa05", Allowed: &yes}))
	}
	h = must(l.Append(decisionlog.Entry{Kind: decisionlog.KindDecision, Request: "CreateContainerRequest", InputSHA256: "aa06", Allowed: &yes}))
	measure(eventlog.OpDecisionsHead, "sha256:"+h)
	p.heads = append(p.heads, h)
	return p
}

func TestAuditIntact(t *testing.T) {
	p := newPodLogs(t)
	if _, err := os.Stat(p.log + ".1"); err != nil {
		t.Fatalf("the log did not rotate: %v", err)
	}
	out, e, code := runCtl(t, "audit", "--log", p.dir, "--eventlog", p.events)
	if code != 0 {
		t.Fatalf("%d %q %q", code, out, e)
	}
	for _, want := range []string{
		"policy installed sha256:1111111111111111 (initdata)",
		// Host-sent text is quoted: an escape sequence in an argument
		// cannot drive the reader's terminal.
		`CreateContainer allowed input sha256:aa01 container "app" type "container" image "registry.example/app@sha256:ab" image-name "registry.example/app:v1" args ["sh" "-c" "echo \x1b[2J; exec app"] (done)`,
		`ExecProcess allowed input sha256:aa03 container "app" exec "e1" args ["ps" "-ef"] exec grant nonce MDEyMzQ1Njc4OWFiY2RlZg (done)`,
		"SetPolicy allowed input sha256:aa04 new policy sha256:2222222222222222\n",
		"policy installed sha256:2222222222222222 (SetPolicy)",
		// An entry without a summary is listed as it always was.
		"CreateContainer allowed input sha256:aa06\n",
		"audit ok: ", "2 measured heads match",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ReadStream") || strings.Contains(out, "StatsContainer") {
		t.Fatalf("listed a request that does not change the pod:\n%s", out)
	}
	if i, j := strings.Index(out, "aa01"), strings.Index(out, "aa03"); i > j {
		t.Fatal("not in order")
	}
	out, _, _ = runCtl(t, "audit", "--all", "--log", p.dir, "--eventlog", p.events)
	if !strings.Contains(out, "ReadStream denied input sha256:aa02") {
		t.Fatalf("--all:\n%s", out)
	}
}

// Every way of changing the log or the measurements after the fact fails.
func TestAuditDetectsTampering(t *testing.T) {
	lineOps := map[string]func(ls []string) []string{
		"removed entry": func(ls []string) []string { return append(ls[:3:3], ls[4:]...) },
		"edited entry": func(ls []string) []string {
			ls[1] = strings.Replace(ls[1], `"allowed":true`, `"allowed":false`, 1)
			return ls
		},
		"reordered entries": func(ls []string) []string { ls[2], ls[3] = ls[3], ls[2]; return ls },
		"edited image": func(ls []string) []string {
			ls[1] = strings.Replace(ls[1], "app@sha256:ab", "evil@sha256:ab", 1)
			return ls
		},
		"edited granted argv": func(ls []string) []string { ls[4] = strings.Replace(ls[4], `"-ef"`, `"-e"`, 1); return ls },
		"summary removed": func(ls []string) []string {
			ls[4] = regexp.MustCompile(`,"summary":\{[^}]*\}`).ReplaceAllString(ls[4], "")
			return ls
		},
		"newest entries dropped": func(ls []string) []string { return ls[:len(ls)-1] },
	}
	for name, op := range lineOps {
		t.Run(name, func(t *testing.T) {
			p := newPodLogs(t)
			files, err := decisionFiles(p.dir)
			if err != nil {
				t.Fatal(err)
			}
			file := files[0] // the early entries, up to the first head
			if name == "newest entries dropped" {
				file = p.log
			}
			ls := strings.SplitAfter(string(readFile(t, file)), "\n")
			ls = ls[:len(ls)-1]
			edited := strings.Join(op(slices.Clone(ls)), "")
			if edited == strings.Join(ls, "") {
				t.Fatal("the edit changed nothing")
			}
			os.WriteFile(file, []byte(edited), 0o600)
			out, e, code := runCtl(t, "audit", "--log", p.dir, "--eventlog", p.events)
			if code == 0 {
				t.Fatalf("accepted:\n%s", out)
			}
			t.Log(e, out)
		})
	}
	t.Run("another chain", func(t *testing.T) {
		// A log rewritten from scratch verifies as a chain, but not
		// against the heads the TEE measured.
		p, q := newPodLogs(t), newPodLogs(t)
		out, _, code := runCtl(t, "audit", "--log", q.dir, "--eventlog", p.events)
		if code == 0 || !strings.Contains(out, "is not an entry of the decision log") {
			t.Fatalf("%d\n%s", code, out)
		}
	})
	t.Run("head not in the log", func(t *testing.T) {
		p := newPodLogs(t)
		ev, _ := eventlog.Open(p.events, nil)
		ev.Record(eventlog.DomainCocoon, eventlog.OpDecisionsHead, "sha256:"+strings.Repeat("ab", 32))
		ev.Close()
		out, _, code := runCtl(t, "audit", "--log", p.dir, "--eventlog", p.events)
		if code == 0 || !strings.Contains(out, "abababababababab (measurement 4) is not an entry") {
			t.Fatalf("%d\n%s", code, out)
		}
	})
	t.Run("heads out of order", func(t *testing.T) {
		p := newPodLogs(t)
		ev, _ := eventlog.Open(p.events, nil)
		ev.Record(eventlog.DomainCocoon, eventlog.OpDecisionsHead, "sha256:"+p.heads[0])
		ev.Close()
		out, _, code := runCtl(t, "audit", "--log", p.dir, "--eventlog", p.events)
		if code == 0 || !strings.Contains(out, "the log was reordered") {
			t.Fatalf("%d\n%s", code, out)
		}
	})
	t.Run("policy not in the log", func(t *testing.T) {
		p := newPodLogs(t)
		ev, _ := eventlog.Open(p.events, nil)
		ev.Record(eventlog.DomainCocoon, eventlog.OpSetPolicy, "sha256:"+strings.Repeat("3", 64))
		ev.Close()
		out, _, code := runCtl(t, "audit", "--log", p.dir, "--eventlog", p.events)
		if code == 0 || !strings.Contains(out, "measured SetPolicy 3333333333333333 (measurement 4) has no policy entry") {
			t.Fatalf("%d\n%s", code, out)
		}
	})
}

// With TDX evidence the measurement log must replay to the quote's RTMR3.
// go-tdx-guest's canned quote stands in for the hardware; its RTMR3 is
// set to the replayed value (the quote's signature is not checked here).
func TestAuditEvidence(t *testing.T) {
	p := newPodLogs(t)
	events, err := eventlog.Parse(readFile(t, p.events))
	if err != nil {
		t.Fatal(err)
	}
	evidence := func(rtmr3 []byte) string {
		q := kbstest.CannedTDXQuote()
		// Quote v4: 48-byte header, then the TD report body, whose RTMR3
		// starts 472 bytes in (after TEE_TCB_SVN, MRSEAM, MRSIGNERSEAM,
		// SEAMATTRIBUTES, TDATTRIBUTES, XFAM, MRTD, MRCONFIGID, MROWNER,
		// MROWNERCONFIG and RTMR0-2).
		copy(q[48+472:], rtmr3)
		if body, err := attest.TDXQuoteBody(q); err != nil || !bytes.Equal(body.GetRtmrs()[3], rtmr3) {
			t.Fatalf("patching RTMR3: %v", err)
		}
		b, _ := json.Marshal(attest.TDXEvidence{Quote: base64.StdEncoding.EncodeToString(q)})
		path := filepath.Join(t.TempDir(), "evidence.json")
		os.WriteFile(path, b, 0o600)
		return path
	}
	out, e, code := runCtl(t, "audit", "--log", p.dir, "--eventlog", p.events, "--evidence", evidence(eventlog.Replay(events)))
	if code != 0 || !strings.Contains(out, "RTMR3 matches the measurement log (4 events)") {
		t.Fatalf("%d %q\n%s", code, e, out)
	}
	out, _, code = runCtl(t, "audit", "--log", p.dir, "--eventlog", p.events, "--evidence", evidence(eventlog.Replay(events[:3])))
	if code == 0 || !strings.Contains(out, "not the one the TEE measured") {
		t.Fatalf("%d\n%s", code, out)
	}
}

// Through the real agent: the owner's tools make the keys and the exec
// grant, the agent runs a container and the granted exec under
// coco-default, and audit names the image and argv of the container and
// the granted argv of the exec — not the token the host passed on.
func TestAuditNamesWhatRan(t *testing.T) {
	testenv.RequiresRoot(t)
	keys := genKeys(t)
	coco, err := policy.Builtin(policy.CocoDefault)
	if err != nil {
		t.Fatal(err)
	}
	id, err := initdata.Create("sha256", map[string]string{"policy.rego": coco, ownerTOML: string(readFile(t, filepath.Join(keys, ownerTOML)))})
	if err != nil {
		t.Fatal(err)
	}
	img, err := initdata.Image(id.Raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testagent.Config(t)
	cfg.AttestSample = true // keeps the measurement log (no TEE here)
	cfg.InitdataDevice = filepath.Join(t.TempDir(), "initdata.img")
	if err := os.WriteFile(cfg.InitdataDevice, img, 0o600); err != nil {
		t.Fatal(err)
	}
	a := testagent.Start(t, cfg, daemon.Options{}).Agent
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A container as containerd's CRI plugin annotates it (containerd
	// internal/cri/annotations); the rootfs is shared by the host here,
	// so the image is named by the annotation alone.
	const image = "registry.example/shop/app:v1"
	spec := &agentpb.Spec{
		Version: "1.1.0",
		Process: &agentpb.Process{Args: []string{"sleep", "1000"}, Env: []string{"PATH=/bin", "API_TOKEN=not-for-the-log"}, Cwd: "/"},
		Root:    &agentpb.Root{Path: testenv.KataRootfs(t, cfg.KataRunDir, "app")},
		Mounts:  []*agentpb.Mount{{Destination: "/proc", Source: "proc", Type: "proc"}},
		Linux:   &agentpb.Linux{Namespaces: []*agentpb.LinuxNamespace{{Type: "mount"}, {Type: "ipc"}, {Type: "uts"}, {Type: "pid"}}},
		Annotations: map[string]string{
			"io.kubernetes.cri.container-type":    "container",
			"io.kubernetes.cri.container-name":    "app",
			"io.kubernetes.cri.image-name":        image,
			"io.kubernetes.cri.sandbox-name":      "web",
			"io.kubernetes.cri.sandbox-namespace": "shop",
		},
	}
	if _, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: "app", ExecId: "app", OCI: spec}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: "app"}); err != nil {
		t.Fatal(err)
	}
	tok, e, code := runCtl(t, "exec-grant", "--key", filepath.Join(keys, execKeyFile), "--pod", "web", "-n", "shop", "-c", "app", "--", "echo", "granted run")
	if code != 0 {
		t.Fatalf("exec-grant: %s", e)
	}
	tok = strings.TrimSpace(tok)
	exec := &agentpb.ExecProcessRequest{ContainerId: "app", ExecId: "e1", Process: &agentpb.Process{Args: []string{execgrant.Command, tok}}}
	if _, err := a.ExecProcess(ctx, exec); err != nil {
		t.Fatalf("granted exec: %v", err)
	}
	if _, err := a.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: "app", ExecId: "e1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SignalProcess(ctx, &agentpb.SignalProcessRequest{ContainerId: "app", Signal: 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: "app", ExecId: "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RemoveContainer(ctx, &agentpb.RemoveContainerRequest{ContainerId: "app"}); err != nil {
		t.Fatal(err)
	}

	out, e, code := runCtl(t, "audit", "--log", cfg.DecisionLog, "--eventlog", filepath.Join(cfg.StateDir, "eventlog"))
	if code != 0 {
		t.Fatalf("audit: %d %s\n%s", code, e, out)
	}
	for _, want := range []string{
		`CreateContainer allowed input sha256:`,
		` container "app" type "container" image-name "` + image + `" args ["sleep" "1000"]` + "\n",
		` container "app" exec "e1" args ["echo" "granted run"] exec grant nonce `,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, tok) || strings.Contains(string(readFile(t, cfg.DecisionLog)), "not-for-the-log") {
		t.Fatalf("the token or an environment value reached the audit:\n%s", out)
	}
}

// A forged log must not put control sequences on the auditor's terminal,
// whatever field carries them.
func TestAuditListingIsPrintable(t *testing.T) {
	yes := true
	esc := "\x1b[2J\x1b]0;owned\a"
	var out bytes.Buffer
	a := &audit{w: &out, chain: &chain{entries: []decisionlog.Entry{
		{Seq: 1, Kind: decisionlog.KindPolicy, Time: esc, PolicySHA256: esc, Source: esc},
		{Seq: 2, Kind: decisionlog.KindDecision, Time: esc, Request: "CreateContainerRequest" + esc, Allowed: &yes, InputSHA256: esc},
	}}}
	a.list(true)
	if bytes.ContainsAny(out.Bytes(), "\x1b\a") {
		t.Fatalf("control characters reached the listing: %q", out.String())
	}
	if !strings.Contains(out.String(), `\x1b[2J`) {
		t.Errorf("forged text not shown quoted: %q", out.String())
	}
}
