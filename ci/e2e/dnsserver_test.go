package e2e

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// TestDNSServer resolves through the test DNS server with Go's own
// resolver over TCP, the resolver the agent (built netgo) uses in the guest.
func TestDNSServer(t *testing.T) {
	want := netip.MustParseAddr(guestGateway)
	s, err := StartDNSServer("Registry.Example.test", want)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", s.Addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := r.LookupNetIP(ctx, "ip", "registry.example.test")
	if err != nil || len(got) != 1 || got[0] != want {
		t.Fatalf("lookup = %v, %v; want [%v]", got, err, want)
	}
	if s.Answers() != 1 {
		t.Errorf("%d A answers, want 1", s.Answers())
	}
	_, err = r.LookupNetIP(ctx, "ip4", "other.example.test")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("unknown name: %v, want not found", err)
	}
}

// FuzzDNSAnswer: any bytes from the guest get a well-formed reply or none.
func FuzzDNSAnswer(f *testing.F) {
	s := &DNSServer{name: dnsmessage.MustNewName("registry.example.test."), a: [4]byte{10, 0, 2, 2}}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: s.name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(q)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, query []byte) {
		reply, ok := s.Answer(query)
		if !ok {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(reply)
		if err != nil || !h.Response {
			t.Fatalf("reply %x does not parse as a response: %v", reply, err)
		}
	})
}
