package e2e

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSServer answers DNS over TCP on the host's loopback for one name: A
// queries get one address, every other type of that name an empty answer,
// other names NXDOMAIN. TCP because QEMU's user-mode network forwards only
// TCP from the guest to a host service (guestfwd); the guest's resolver
// uses TCP when its resolv.conf says "options use-vc".
type DNSServer struct {
	Addr    string // 127.0.0.1:<ephemeral port>
	name    dnsmessage.Name
	a       [4]byte
	l       net.Listener
	wg      sync.WaitGroup
	answers atomic.Int64
}

// StartDNSServer listens on an ephemeral loopback port and serves name → addr.
func StartDNSServer(name string, addr netip.Addr) (*DNSServer, error) {
	if !addr.Is4() {
		return nil, errors.New("DNS server: want an IPv4 address")
	}
	n, err := dnsmessage.NewName(strings.ToLower(strings.TrimSuffix(name, ".")) + ".")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &DNSServer{Addr: l.Addr().String(), name: n, a: addr.As4(), l: l}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Answers counts the A records served for the name.
func (s *DNSServer) Answers() int64 { return s.answers.Load() }

// Close stops listening and waits for open connections to finish.
func (s *DNSServer) Close() error {
	err := s.l.Close()
	s.wg.Wait()
	return err
}

func (s *DNSServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.conn(c)
		}()
	}
}

// conn answers length-prefixed messages (RFC 1035 4.2.2) until the peer
// hangs up or stalls.
func (s *DNSServer) conn(c net.Conn) {
	for {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		reply, ok := s.Answer(q)
		if !ok {
			return
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(reply)))
		if _, err := c.Write(append(out, reply...)); err != nil {
			return
		}
	}
}

// Answer builds the reply to one query message; ok is false when the
// message is not a query with exactly one question (the connection is then
// dropped, as for garbage).
func (s *DNSServer) Answer(query []byte) (reply []byte, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, false
	}
	q := qs[0]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	ours := strings.EqualFold(q.Name.String(), s.name.String())
	if !ours {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	if ours && q.Type == dnsmessage.TypeA && q.Class == dnsmessage.ClassINET {
		rr := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 5}
		if b.AResource(rr, dnsmessage.AResource{A: s.a}) != nil {
			return nil, false
		}
		s.answers.Add(1)
	}
	out, err := b.Finish()
	if err != nil {
		return nil, false
	}
	return out, true
}
