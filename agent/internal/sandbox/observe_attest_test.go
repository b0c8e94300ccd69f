package sandbox_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/internal/observe"
	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/stream"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

// TestSealedLogsAttested: a sealed container's stdout and stderr carry the
// agent's evidence over their headers, which the owner's opener checks
// and requires; without an attester they open as NOT ATTESTED; an
// attester that gives no evidence refuses the container (fail closed:
// it never runs with logs the owner cannot tell from a forgery) and leaves
// nothing behind. The SEV-SNP device is go-sev-guest's fake (no SNP
// hardware here).
func TestSealedLogsAttested(t *testing.T) {
	snp := kbstest.SNPAttester(t)
	seal, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(seal.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := observe.Parse(fmt.Appendf(nil, "[owner]\nseal_key = %q\n\n[observability]\nlogs = \"seal\"\n", base64.StdEncoding.EncodeToString(der)))
	if err != nil {
		t.Fatal(err)
	}
	p := newPodOpts(t, func(o *sandbox.Options) { o.Observe = cfg })
	ctx := context.Background()
	// run creates and runs a container printing on both streams and
	// returns both, sealed, as the host reads them.
	run := func(cid string) ([]byte, error) {
		t.Helper()
		s := specFor(p.rootfs(t, cid), "sh", "-c", "echo out; echo err >&2")
		s.Annotations = map[string]string{"io.kubernetes.cri.container-name": "app"}
		c, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: cid, Spec: s})
		if err != nil {
			return nil, err
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		var all []byte
		for _, w := range []stream.Which{stream.Stdout, stream.Stderr} {
			for {
				b, err := c.Init().IO.Read(w, 32<<10)
				if err != nil {
					t.Fatal(err)
				}
				if len(b) == 0 {
					break
				}
				all = append(all, b...)
			}
		}
		return all, nil
	}
	open := func(text []byte, require bool) (string, map[sealedlog.Kind][]sealedlog.Event) {
		t.Helper()
		o, err := sealedlog.NewOpenerWith(seal, sealedlog.OpenerOptions{RequireEvidence: require})
		if err != nil {
			t.Fatal(err)
		}
		var plain strings.Builder
		evs := map[sealedlog.Kind][]sealedlog.Event{}
		for _, l := range strings.SplitAfter(string(text), "\n") {
			if l == "" {
				continue
			}
			for _, e := range o.Line([]byte(l)) {
				plain.Write(e.Data)
				evs[e.Kind] = append(evs[e.Kind], e)
			}
		}
		for _, e := range o.End() {
			evs[e.Kind] = append(evs[e.Kind], e)
		}
		return plain.String(), evs
	}

	p.SetAttester(snp)
	text, err := run("att")
	if err != nil {
		t.Fatal(err)
	}
	plain, evs := open(text, true)
	if plain != "out\nerr\n" || len(evs[sealedlog.Attested]) != 2 || len(evs[sealedlog.Rejected]) != 0 {
		t.Fatalf("attested container: %q, events %+v", plain, evs)
	}
	for _, e := range evs[sealedlog.Attested] {
		if e.Tee != attest.TeeSNP {
			t.Fatalf("attested by %q", e.Tee)
		}
	}

	p.SetAttester(nil)
	if text, err = run("noatt"); err != nil {
		t.Fatal(err)
	}
	if plain, evs := open(text, false); plain != "out\nerr\n" || len(evs[sealedlog.NotAttested]) != 2 || len(evs[sealedlog.Attested]) != 0 {
		t.Fatalf("without an attester: %q, events %+v", plain, evs)
	}
	if plain, _ := open(text, true); plain != "" {
		t.Fatalf("RequireEvidence showed unattested output %q", plain)
	}

	withheld, err := attest.New(attest.Options{Root: t.TempDir(),
		TDXQuote: func(context.Context, [64]byte) ([]byte, error) { return nil, errors.New("quote withheld") }})
	if err != nil {
		t.Fatal(err)
	}
	p.SetAttester(withheld)
	_, err = run("withheld")
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "quote withheld") {
		t.Fatalf("CreateContainer without evidence: %v, want FAILED_PRECONDITION naming the attester's error", err)
	}
	if got := p.Containers(); slices.Contains(got, "withheld") {
		t.Fatalf("the refused container is registered: %v", got)
	}
}
