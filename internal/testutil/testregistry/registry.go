// Package testregistry runs a real OCI registry (Debian's docker-registry)
// on 127.0.0.1 for tests, and builds, signs, encrypts and pushes images to
// it with umoci and skopeo.
package testregistry

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Binary is where Debian's docker-registry package installs the registry.
const Binary = "/usr/bin/docker-registry"

// Registry is a running registry.
type Registry struct {
	// Addr is host:port.
	Addr string
	// User and Password are set when the registry requires authentication.
	User, Password string
	dir            string
}

// Option configures Start.
type Option func(*opts)

type opts struct{ user, password string }

// WithAuth requires htpasswd basic authentication.
func WithAuth(user, password string) Option {
	return func(o *opts) { o.user, o.password = user, password }
}

// Start runs a registry with storage in a temporary directory until the
// test ends.
func Start(t testing.TB, options ...Option) *Registry {
	t.Helper()
	var o opts
	for _, f := range options {
		f(&o)
	}
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("docker-registry is needed (ci/install-deps.sh): %v", err)
	}
	dir := t.TempDir()
	// Port 0: the registry picks a free port and names it in its
	// "listening on" line (info level), so no port is guessed and raced for.
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n", filepath.Join(dir, "data"))
	if o.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htp := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htp, []byte(o.user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		conf += fmt.Sprintf("auth:\n  htpasswd:\n    realm: test\n    path: %s\n", htp)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Binary, "serve", cfgPath)
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start registry: %v", err)
	}
	logs := &lockedBuffer{}
	listening := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		watchLog(out, logs, listening)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-drained
		_ = cmd.Wait()
	})
	// The registry logs the line once its listener is bound, just before
	// it serves (distribution registry/registry.go, ListenAndServe:
	// listener.NewListener, Infof("listening on %v", ln.Addr()), Serve):
	// from then on connections queue until accepted.
	select {
	case addr, ok := <-listening:
		if !ok {
			t.Fatalf("registry exited without listening:\n%s", logs.String())
		}
		return &Registry{Addr: addr, User: o.user, Password: o.password, dir: dir}
	case <-time.After(20 * time.Second):
		t.Fatalf("registry did not say it listens within 20s:\n%s", logs.String())
		return nil
	}
}

// watchLog copies the registry's log into logs until it ends, sends the
// address of its "listening on <addr>" line on listening and closes
// listening when the log ends.
func watchLog(r io.Reader, logs *lockedBuffer, listening chan<- string) {
	defer close(listening)
	sent := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		logs.WriteLine(line)
		if sent {
			continue
		}
		if _, rest, ok := strings.Cut(line, "listening on "); ok {
			addr, _, _ := strings.Cut(rest, `"`)
			listening <- strings.TrimSpace(addr)
			sent = true
		}
	}
	// Keep draining after a scanner error so the registry never blocks on
	// a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// lockedBuffer is the registry's log, written by watchLog and read by a
// failing test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) WriteLine(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
	l.b.WriteByte('\n')
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Run runs a command and fails the test with its output on error.
func Run(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func runQuiet(env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	return cmd.Run()
}
