package cli

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/sealedlog"
)

// attestedOutput is a container's stdout and stderr as the agent seals
// and attests them with a, interleaved as kubectl logs shows them.
func attestedOutput(t *testing.T, dir string, a attest.Attester, cid string) string {
	t.Helper()
	priv, err := sealedlog.ParsePrivateKeyPEM(readFile(t, filepath.Join(dir, sealKeyFile)))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := sealedlog.NewSealer(priv.PublicKey(), cid+"/stdout", sealedlog.Options{})
	errS, _ := sealedlog.NewSealer(priv.PublicKey(), cid+"/stderr", sealedlog.Options{})
	if a != nil {
		if err := sealedlog.Attest(context.Background(), a, out, errS); err != nil {
			t.Fatal(err)
		}
	}
	o1, _ := out.Write([]byte(cid + " says hello\n"))
	e1, _ := errS.Write([]byte(cid + " warns\n"))
	return string(o1) + string(e1) + string(errS.Close()) + string(out.Close())
}

// logs open marks each stream attested (with its TEE) or NOT ATTESTED;
// --require-evidence hides unattested streams and fails; the sample
// attester's evidence is marked as authenticating nothing and counts only
// with --insecure-sample-evidence.
func TestLogsOpenAttestation(t *testing.T) {
	dir := genKeys(t)
	key := filepath.Join(dir, sealKeyFile)
	in := filepath.Join(t.TempDir(), "logs.txt")
	open := func(text string, flags ...string) (string, string, int) {
		t.Helper()
		if err := os.WriteFile(in, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return runCtl(t, append(append([]string{"logs", "open", "--key", key}, flags...), in)...)
	}
	// marked: both of the container's streams carry the mark.
	marked := func(out, cid, what string) bool {
		re := regexp.MustCompile(`(?m)^### cocoon-logs: ` + cid + `/std(out|err)#[0-9a-f]{16}: ` + regexp.QuoteMeta(what))
		return len(re.FindAllString(out, -1)) == 2
	}

	genuine := attestedOutput(t, dir, kbstest.SNPAttester(t), "app")
	forged := attestedOutput(t, dir, nil, "fake") // the host's own streams, made with the public key
	sample := attestedOutput(t, dir, attest.Sample{}, "dev")

	out, e, code := open(genuine, "--require-evidence")
	if code != 0 || !marked(out, "app", "attested (snp, report data checked)") || !strings.Contains(out, "app says hello\n") {
		t.Fatalf("attested: %d %q %q", code, out, e)
	}

	out, e, code = open(genuine + forged)
	if code != 0 || !marked(out, "fake", "NOT ATTESTED") || !marked(out, "app", "attested (snp") || !strings.Contains(out, "fake says hello") {
		t.Fatalf("mixed, evidence not required: %d %q %q", code, out, e)
	}
	out, e, code = open(genuine+forged, "--require-evidence")
	if code == 0 || strings.Contains(out, "fake says") || strings.Contains(out, "fake warns") || !strings.Contains(out, "app says hello") ||
		!strings.Contains(out, "no evidence from the agent attests this stream") || !strings.Contains(e, "integrity problems") {
		t.Fatalf("mixed, evidence required: %d %q %q", code, out, e)
	}

	out, e, code = open(sample)
	if code != 0 || !marked(out, "dev", "attested by the SAMPLE attester (no TEE): it authenticates nothing") {
		t.Fatalf("sample: %d %q %q", code, out, e)
	}
	if out, e, code = open(sample, "--require-evidence"); code == 0 || strings.Contains(out, "dev says") {
		t.Fatalf("sample, evidence required: %d %q %q", code, out, e)
	}
	if out, e, code = open(sample, "--require-evidence", "--insecure-sample-evidence"); code != 0 || !strings.Contains(out, "dev says hello") {
		t.Fatalf("sample allowed: %d %q %q", code, out, e)
	}
}

// Streams sealed before attestation existed (the golden vector) still
// open, marked NOT ATTESTED.
func TestLogsOpenOldStream(t *testing.T) {
	// The golden vectors' private key is 32 bytes of 0x07.
	k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "golden.key")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	in := filepath.Join("..", "..", "..", "agent", "sealedlog", "testdata", "golden-x25519.txt")
	out, e, code := runCtl(t, "logs", "open", "--key", keyFile, in)
	if code != 0 || !strings.Contains(out, "hello, owner\nsplit line\nno newline") || !strings.Contains(out, ": NOT ATTESTED") {
		t.Fatalf("old stream: %d %q %q", code, out, e)
	}
}

// --evidence-out writes the evidence of every attested stream set, once per
// attestation line, with its TEE and stream names, exactly as the line
// carried it; unattested streams are not in it.
func TestLogsOpenEvidenceOut(t *testing.T) {
	dir := genKeys(t)
	key := filepath.Join(dir, sealKeyFile)
	tmp := t.TempDir()
	in := filepath.Join(tmp, "logs.txt")
	text := attestedOutput(t, dir, kbstest.SNPAttester(t), "app") +
		attestedOutput(t, dir, nil, "fake") +
		attestedOutput(t, dir, kbstest.SNPAttester(t), "db")
	if err := os.WriteFile(in, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	// What the input's attestation lines carry, by the container they
	// attest (the label before "/std").
	want := map[string]*sealedlog.Attestation{}
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, sealedlog.AttestPrefix) {
			continue
		}
		at, _, err := sealedlog.ParseAttestation([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		want[string(at.Evidence)] = at
	}
	if len(want) != 2 {
		t.Fatalf("%d attestation lines in the input, want 2", len(want))
	}

	evFile := filepath.Join(tmp, "evidence.json")
	out, e, code := runCtl(t, "logs", "open", "--key", key, "--evidence-out", evFile, in)
	if code != 0 {
		t.Fatalf("logs open: %d %q %q", code, out, e)
	}
	var got logsEvidence
	if err := json.Unmarshal(readFile(t, evFile), &got); err != nil {
		t.Fatalf("evidence file: %v", err)
	}
	if len(got.Attestations) != 2 {
		t.Fatalf("%d attestations in the evidence file, want 2: %s", len(got.Attestations), readFile(t, evFile))
	}
	seen := map[string]bool{}
	for _, a := range got.Attestations {
		var compact bytes.Buffer
		if err := json.Compact(&compact, a.Evidence); err != nil {
			t.Fatal(err)
		}
		at := want[compact.String()]
		if at == nil || a.Tee != attest.TeeSNP || len(a.Streams) != 2 {
			t.Fatalf("attestation not from the input: %+v", a)
		}
		cid, _, _ := strings.Cut(a.Streams[0], "/")
		for _, s := range a.Streams {
			if !strings.HasPrefix(s, cid+"/std") || cid == "fake" {
				t.Errorf("streams %v in one attestation", a.Streams)
			}
		}
		seen[cid] = true
	}
	if !seen["app"] || !seen["db"] {
		t.Errorf("attested containers in the evidence file: %v", seen)
	}

	// Nothing attested: an empty list, so a service sees there is nothing.
	forged := filepath.Join(tmp, "forged.txt")
	os.WriteFile(forged, []byte(attestedOutput(t, dir, nil, "fake")), 0o600)
	if out, e, code := runCtl(t, "logs", "open", "--key", key, "--evidence-out", evFile, forged); code != 0 {
		t.Fatalf("logs open, nothing attested: %d %q %q", code, out, e)
	}
	got = logsEvidence{}
	if err := json.Unmarshal(readFile(t, evFile), &got); err != nil || got.Attestations == nil || len(got.Attestations) != 0 {
		t.Errorf("evidence file with nothing attested: %v %s", err, readFile(t, evFile))
	}

	if _, e, code := runCtl(t, "logs", "open", "--key", key, "--evidence-out", filepath.Join(tmp, "no", "dir.json"), in); code == 0 || !strings.Contains(e, "--evidence-out") {
		t.Errorf("unwritable evidence file: %d %q", code, e)
	}
}
