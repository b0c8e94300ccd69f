// Package transport parses agent addresses and opens the connections the
// Kata runtime and cocoonctl use: AF_VSOCK, unix (path or abstract), TCP, and
// on the dialling side the hybrid-vsock handshake of Cloud Hypervisor and
// Firecracker.
package transport

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
)

// Scheme names a kind of agent address.
type Scheme string

// The address schemes understood by Listen and Dial.
const (
	Vsock  Scheme = "vsock"
	Unix   Scheme = "unix"
	TCP    Scheme = "tcp"
	HVsock Scheme = "hvsock" // dial only: unix socket + "CONNECT <port>\n"
)

// AnyCID is the vsock CID that accepts connections from any peer (-1 in Kata's syntax).
const AnyCID = math.MaxUint32

// Addr is a parsed agent address.
type Addr struct {
	Scheme Scheme
	// Path is the unix socket path; abstract sockets start with "@".
	Path string
	// Host and Port are set for tcp.
	Host string
	// CID and Port are set for vsock and hvsock.
	CID  uint32
	Port uint32
}

const maxAddr = 4096

// ParseAddr parses vsock://CID:PORT (CID -1 = any), unix:///path,
// unix://@abstract, tcp://host:port and hvsock:///path:PORT.
func ParseAddr(s string) (Addr, error) {
	if len(s) > maxAddr {
		return Addr{}, fmt.Errorf("address is %d bytes long, more than %d", len(s), maxAddr)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Addr{}, fmt.Errorf("address %q: want scheme://..., one of vsock, unix, tcp, hvsock", s)
	}
	if strings.ContainsRune(rest, 0) {
		return Addr{}, fmt.Errorf("address %q contains a NUL byte", s)
	}
	switch Scheme(scheme) {
	case Vsock:
		cid, port, err := splitCIDPort(rest)
		if err != nil {
			return Addr{}, fmt.Errorf("address %q: %w", s, err)
		}
		return Addr{Scheme: Vsock, CID: cid, Port: port}, nil
	case Unix:
		if rest == "" || rest == "@" || (rest[0] != '/' && rest[0] != '@') {
			return Addr{}, fmt.Errorf("address %q: want unix:///absolute/path or unix://@abstract", s)
		}
		if len(rest) > 107 {
			return Addr{}, fmt.Errorf("address %q: unix socket path longer than 107 bytes", s)
		}
		return Addr{Scheme: Unix, Path: rest}, nil
	case TCP:
		host, portStr, err := net.SplitHostPort(rest)
		if err != nil {
			return Addr{}, fmt.Errorf("address %q: %w", s, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return Addr{}, fmt.Errorf("address %q: invalid port %q", s, portStr)
		}
		return Addr{Scheme: TCP, Host: host, Port: uint32(port)}, nil
	case HVsock:
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 || rest[0] != '/' {
			return Addr{}, fmt.Errorf("address %q: want hvsock:///path/to/socket:PORT", s)
		}
		port, err := strconv.ParseUint(rest[i+1:], 10, 32)
		if err != nil {
			return Addr{}, fmt.Errorf("address %q: invalid port %q", s, rest[i+1:])
		}
		return Addr{Scheme: HVsock, Path: rest[:i], Port: uint32(port)}, nil
	}
	return Addr{}, fmt.Errorf("address %q: unknown scheme %q, want vsock, unix, tcp or hvsock", s, scheme)
}

func splitCIDPort(s string) (cid, port uint32, err error) {
	c, p, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("want CID:PORT")
	}
	if c == "-1" {
		cid = AnyCID
	} else {
		n, err := strconv.ParseUint(c, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("invalid CID %q", c)
		}
		cid = uint32(n)
	}
	n, err := strconv.ParseUint(p, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid port %q", p)
	}
	return cid, uint32(n), nil
}

// String formats the address back into its canonical form.
func (a Addr) String() string {
	switch a.Scheme {
	case Vsock:
		if a.CID == AnyCID {
			return fmt.Sprintf("vsock://-1:%d", a.Port)
		}
		return fmt.Sprintf("vsock://%d:%d", a.CID, a.Port)
	case Unix:
		return "unix://" + a.Path
	case TCP:
		return "tcp://" + net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port)))
	case HVsock:
		return fmt.Sprintf("hvsock://%s:%d", a.Path, a.Port)
	}
	return string(a.Scheme) + "://?"
}
