package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// echo serves one connection of l, echoing everything back.
func echo(l net.Listener) {
	c, err := l.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	io.Copy(c, c)
}

func roundTrip(t *testing.T, a Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

func TestUnixPathAndAbstract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "agent.sock")
	for _, s := range []string{"unix://" + path, fmt.Sprintf("unix://@cocoon-test-%d", os.Getpid())} {
		a, err := ParseAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		l, err := Listen(a)
		if err != nil {
			t.Fatal(err)
		}
		go echo(l)
		roundTrip(t, a)
		l.Close()
	}
}

func TestStaleSocketReplacedButFileKept(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "a.sock")
	l, _ := net.Listen("unix", sock)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen(Addr{Scheme: Unix, Path: sock})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()

	file := filepath.Join(dir, "precious")
	os.WriteFile(file, []byte("data"), 0o600)
	if _, err := Listen(Addr{Scheme: Unix, Path: file}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listening over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "data" {
		t.Fatal("regular file was clobbered")
	}
}

func TestTCP(t *testing.T) {
	l, err := Listen(Addr{Scheme: TCP, Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go echo(l)
	port := l.Addr().(*net.TCPAddr).Port
	roundTrip(t, Addr{Scheme: TCP, Host: "127.0.0.1", Port: uint32(port)})
}

// hybridMux plays the Cloud Hypervisor side of hybrid vsock: it reads
// "CONNECT <port>\n", answers reply, and then echoes.
func hybridMux(t *testing.T, reply string) Addr {
	path := filepath.Join(t.TempDir(), "hv.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "CONNECT 1024\n" {
			return
		}
		io.WriteString(c, reply)
		io.Copy(c, c)
	}()
	return Addr{Scheme: HVsock, Path: path, Port: 1024}
}

func TestHybridVsock(t *testing.T) {
	roundTrip(t, hybridMux(t, "OK 1073741824\n"))
}

func TestHybridVsockRefused(t *testing.T) {
	a := hybridMux(t, "ERR no listener\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Dial(ctx, a); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v, want a refused handshake", err)
	}
}

func TestVsockListen(t *testing.T) {
	// Listening needs only the vsock address family; nothing local can
	// connect without a hypervisor, so serving is proven in the VM test.
	l, err := Listen(Addr{Scheme: Vsock, CID: AnyCID, Port: 41024})
	if err != nil {
		t.Fatalf("vsock listen: %v", err)
	}
	l.Close()
}
