package sandbox_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/agent/execgrant"
	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/stream"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
	"github.com/cocoon-tee/cocoon/internal/testutil/testgrant"
)

// TestEncryptedExecAnnouncesEvidence: an encrypted exec's stdout starts
// with the session's announcement, whose evidence binds the grant's nonce
// and every sealed stream of the session, and the owner opens the output
// under it. The SEV-SNP device is go-sev-guest's fake (no SNP hardware
// here): it signs real-format reports with the report data asked for.
// Without an attester nothing is announced, which cocoonctl exec refuses;
// with one that gives no evidence the exec is refused.
func TestEncryptedExecAnnouncesEvidence(t *testing.T) {
	snp := kbstest.SNPAttester(t)
	key, cfg := grantConfig(t, "")
	p := newPodOpts(t, func(o *sandbox.Options) { o.Observe = cfg })
	ctx := context.Background()
	s := specFor(p.rootfs(t, "c1"), "sleep", "1000")
	s.Annotations = map[string]string{"io.kubernetes.cri.container-name": "app",
		"io.kubernetes.cri.sandbox-name": "web", "io.kubernetes.cri.sandbox-namespace": "shop"}
	c, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// start execs a granted `sh -c` with end-to-end I/O and returns the
	// grant's nonce, the owner's key and the process.
	start := func(eid string) (string, *ecdh.PrivateKey, *container.Process, error) {
		t.Helper()
		tok, nonce, eph := testgrant.Sealed(t, key, "sh", "-c", "echo out; echo err >&2")
		args := []string{execgrant.Command, tok}
		vg, err := p.VerifyExecGrant("c1", args, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		release := p.AdmitExecGrant("c1", eid, tok, vg)
		proc, err := p.Exec(ctx, sandbox.ExecRequest{ContainerID: "c1", ExecID: eid, Process: &specs.Process{Args: args, Cwd: "/"}})
		release()
		return nonce, eph, proc, err
	}
	// run is start, and all of stdout and stderr.
	run := func(eid string) (string, *ecdh.PrivateKey, []byte, []byte) {
		t.Helper()
		nonce, eph, proc, err := start(eid)
		if err != nil {
			t.Fatal(err)
		}
		readAll := func(w stream.Which) []byte {
			var all []byte
			for {
				b, err := proc.IO.Read(w, 32<<10)
				if err != nil {
					t.Fatal(err)
				}
				if len(b) == 0 {
					return all
				}
				all = append(all, b...)
			}
		}
		return nonce, eph, readAll(stream.Stdout), readAll(stream.Stderr)
	}

	p.SetAttester(snp)
	nonce, eph, out, errOut := run("e1")
	first, rest, _ := bytes.Cut(out, []byte("\n"))
	if !execgrant.IsAnnouncement(first) {
		t.Fatalf("stdout does not start with the announcement: %q", first[:min(len(first), 80)])
	}
	ann, err := execgrant.ParseAnnouncement(first)
	if err != nil {
		t.Fatal(err)
	}
	if ann.Tee != attest.TeeSNP {
		t.Fatalf("tee %q", ann.Tee)
	}
	if err := ann.Verify(nonce, false); err != nil {
		t.Fatalf("the agent's announcement: %v", err)
	}
	if err := ann.Verify(execgrant.NewNonce(), false); err == nil {
		t.Fatal("the announcement verifies for another grant")
	}
	owner, err := sealedlog.NewExecOwner(eph)
	if err != nil {
		t.Fatal(err)
	}
	var plain [2][]byte
	headers := 0
	for _, b := range [][]byte{rest, errOut} {
		for _, l := range bytes.SplitAfter(b, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			if _, isHeader := execgrant.HeaderDigest(l); isHeader {
				headers++
				if !ann.Binds(l) {
					t.Fatalf("header not bound by the evidence: %q", l)
				}
			}
			shown, unsealed, err := owner.Line(l)
			if err != nil || unsealed {
				t.Fatalf("line %q: %v (unsealed %v)", l, err, unsealed)
			}
			for _, o := range shown {
				i := 0
				if o.Stderr {
					i = 1
				}
				plain[i] = append(plain[i], o.Data...)
			}
		}
	}
	if err := owner.End(); err != nil {
		t.Fatal(err)
	}
	if headers != execgrant.SessionStreams || string(plain[0]) != "out\n" || string(plain[1]) != "err\n" {
		t.Fatalf("%d headers, stdout %q, stderr %q", headers, plain[0], plain[1])
	}

	// Evidence the TEE does not give (here the fake quote source fails,
	// as a withheld TDX quote would) refuses the exec: it never runs
	// unannounced when an attester is set.
	withheld, err := attest.New(attest.Options{Root: t.TempDir(),
		TDXQuote: func(context.Context, [64]byte) ([]byte, error) { return nil, errors.New("quote withheld") }})
	if err != nil {
		t.Fatal(err)
	}
	p.SetAttester(withheld)
	if _, _, _, err := start("e3"); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "quote withheld") {
		t.Fatalf("exec without evidence: %v", err)
	}

	p.SetAttester(nil)
	_, _, out, _ = run("e2")
	if execgrant.IsAnnouncement(out) || !bytes.HasPrefix(out, []byte(sealedlog.HeaderPrefix)) {
		t.Fatalf("without an attester: stdout starts %q", out[:min(len(out), 40)])
	}
}
