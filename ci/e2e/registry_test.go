package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

// guestGateway is the host as QEMU's user-mode network shows it to the guest:
// connections to it reach the host's loopback.
const guestGateway = "10.0.2.2"

// tlsRegistry is Debian's docker-registry on the host's loopback, serving
// HTTPS with a throw-away CA. The guest trusts that CA only through
// extra_root_certificates in the pod's cdh.toml (carried by initdata).
type tlsRegistry struct {
	Port  int
	CAPEM string
}

// startTLSRegistry runs docker-registry with a certificate for 127.0.0.1,
// the guest's view of the host, 10.0.2.2, and the given host names.
func startTLSRegistry(t *testing.T, names ...string) *tlsRegistry {
	t.Helper()
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := issueCert(t, names)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile := write("cert.pem", certPEM), write("key.pem", keyPEM)
	// Port 0 and info level: the registry binds a free port itself and
	// names it in its "listening on" line, so no port is guessed and no
	// request polls for it.
	conf := write("config.yml", fmt.Sprintf("version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n"+
		"storage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:0\n  tls:\n    certificate: %s\n    key: %s\n",
		filepath.Join(dir, "data"), certFile, keyFile))
	cmd := exec.Command("docker-registry", "serve", conf)
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	logPath := filepath.Join(dir, "registry.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("docker-registry: %v", err)
	}
	listening := make(chan int, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		copyRegistryLog(out, log, listening)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-drained
		cmd.Wait()
		log.Close()
	})
	var port int
	select {
	case p, ok := <-listening:
		if !ok {
			t.Fatalf("docker-registry exited without listening:\n%s", readLog(logPath))
		}
		port = p
	case <-time.After(30 * time.Second):
		t.Fatalf("docker-registry did not say it listens within 30s:\n%s", readLog(logPath))
	}
	return &tlsRegistry{Port: port, CAPEM: caPEM}
}

// copyRegistryLog copies the registry's log to w until it ends, sends the
// port of its "listening on" line on listening and closes listening when the
// log ends. With TLS, Debian's docker-registry 2.8.2+ds1 logs
// msg="listening on 127.0.0.1:46823, tls" (its output here) once its
// listener is bound, just before it serves (distribution
// registry/registry.go, ListenAndServe), so connections from then on queue
// until accepted.
func copyRegistryLog(r io.Reader, w io.Writer, listening chan<- int) {
	defer close(listening)
	sent := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(w, line)
		if _, rest, ok := strings.Cut(line, "listening on "); ok && !sent {
			addr, _, _ := strings.Cut(rest, `"`)
			addr, _, _ = strings.Cut(addr, ",")
			if _, p, err := net.SplitHostPort(strings.TrimSpace(addr)); err == nil {
				if port, err := strconv.Atoi(p); err == nil {
					listening <- port
					sent = true
				}
			}
		}
	}
	// Keep draining after a scanner error so the registry never blocks on
	// a full pipe.
	_, _ = io.Copy(w, r)
}

func readLog(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

// pushBusybox builds a one-layer busybox image and pushes it as repo:latest;
// it returns the reference the guest pulls.
func (r *tlsRegistry) pushBusybox(t *testing.T, repo string) string {
	t.Helper()
	src := testregistry.Build(t, t.TempDir(), []string{"/bin/sh"}, func(t testing.TB, rootfs string) {
		testenv.BusyboxRootfs(t, rootfs)
	})
	dest := fmt.Sprintf("docker://127.0.0.1:%d/%s:latest", r.Port, repo)
	testregistry.Run(t, nil, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", src, dest)
	return r.ref(guestGateway, repo)
}

// ref names repo:latest on the registry through host (an address or a
// name the guest resolves to the host).
func (r *tlsRegistry) ref(host, repo string) string {
	return fmt.Sprintf("%s:%d/%s:latest", host, r.Port, repo)
}

// issueCert makes a CA and a server certificate signed by it.
func issueCert(t *testing.T, names []string) (caPEM, certPEM, keyPEM string) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, srvKey := key(), key()
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cocoon e2e CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "registry"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(guestGateway)}, DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	return enc("CERTIFICATE", caDER), enc("CERTIFICATE", srvDER), enc("EC PRIVATE KEY", keyDER)
}
