package transport

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdlayher/vsock"
)

// Listen opens a listener for a. A stale unix socket file is replaced; its
// parent directory is created with mode 0700.
func Listen(a Addr) (net.Listener, error) {
	switch a.Scheme {
	case Vsock:
		// vsock.ListenContextID with the any-CID binds VMADDR_CID_ANY.
		l, err := vsock.ListenContextID(a.CID, a.Port, nil)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", a, err)
		}
		return l, nil
	case Unix:
		if a.Path[0] == '/' {
			if err := os.MkdirAll(filepath.Dir(a.Path), 0o700); err != nil {
				return nil, fmt.Errorf("listen %s: %w", a, err)
			}
			if err := removeStaleSocket(a.Path); err != nil {
				return nil, fmt.Errorf("listen %s: %w", a, err)
			}
		}
		// Go maps a leading "@" to the abstract namespace.
		return net.Listen("unix", a.Path)
	case TCP:
		return net.Listen("tcp", strings.TrimPrefix(a.String(), "tcp://"))
	}
	return nil, fmt.Errorf("listen %s: scheme %s cannot be listened on", a, a.Scheme)
}

// removeStaleSocket removes path only if it is a socket: a regular file
// someone pointed us at by mistake is left alone.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	return os.Remove(path)
}

// Dial connects to a. For hvsock it performs the hybrid-vsock handshake:
// "CONNECT <port>\n" answered by a line containing "OK".
func Dial(ctx context.Context, a Addr) (net.Conn, error) {
	var d net.Dialer
	switch a.Scheme {
	case Vsock:
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			c, err := vsock.Dial(a.CID, a.Port, nil)
			ch <- result{c, err}
		}()
		select {
		case r := <-ch:
			return r.c, r.err
		case <-ctx.Done():
			go func() {
				if r := <-ch; r.c != nil {
					r.c.Close()
				}
			}()
			return nil, ctx.Err()
		}
	case Unix:
		return d.DialContext(ctx, "unix", a.Path)
	case TCP:
		return d.DialContext(ctx, "tcp", strings.TrimPrefix(a.String(), "tcp://"))
	case HVsock:
		c, err := d.DialContext(ctx, "unix", a.Path)
		if err != nil {
			return nil, err
		}
		if err := hybridHandshake(ctx, c, a.Port); err != nil {
			c.Close()
			return nil, fmt.Errorf("hybrid vsock %s: %w", a, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("dial: unknown scheme %q", a.Scheme)
}

// maxHandshakeLine bounds the hybrid vsock reply; a real one is "OK <port>\n".
const maxHandshakeLine = 256

func hybridHandshake(ctx context.Context, c net.Conn, port uint32) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(c, "CONNECT %d\n", port); err != nil {
		return err
	}
	// Read byte by byte: anything after the newline belongs to the ttrpc stream.
	var line []byte
	b := make([]byte, 1)
	for len(line) < maxHandshakeLine {
		if _, err := io.ReadFull(c, b); err != nil {
			return fmt.Errorf("reading handshake reply: %w", err)
		}
		if b[0] == '\n' {
			if !strings.Contains(string(line), "OK") {
				return fmt.Errorf("handshake refused: %q", line)
			}
			return c.SetDeadline(time.Time{})
		}
		line = append(line, b[0])
	}
	return fmt.Errorf("handshake reply longer than %d bytes", maxHandshakeLine)
}
