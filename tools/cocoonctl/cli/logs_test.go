package cli

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/x509"
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
