package transport

import (
	"strings"
	"testing"
)

func TestParseAddr(t *testing.T) {
	good := []struct {
		in   string
		want Addr
	}{
		{"vsock://-1:1024", Addr{Scheme: Vsock, CID: AnyCID, Port: 1024}},
		{"vsock://3:1025", Addr{Scheme: Vsock, CID: 3, Port: 1025}},
		{"unix:///run/cocoon/agent.sock", Addr{Scheme: Unix, Path: "/run/cocoon/agent.sock"}},
		{"unix://@/tmp/kata-agent.socket", Addr{Scheme: Unix, Path: "@/tmp/kata-agent.socket"}},
		{"tcp://127.0.0.1:15150", Addr{Scheme: TCP, Host: "127.0.0.1", Port: 15150}},
		{"tcp://[::1]:80", Addr{Scheme: TCP, Host: "::1", Port: 80}},
		{"hvsock:///run/vc/kata.hvsock:1024", Addr{Scheme: HVsock, Path: "/run/vc/kata.hvsock", Port: 1024}},
	}
	for _, tc := range good {
		got, err := ParseAddr(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseAddr(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
	bad := map[string]string{
		"":                                    "want scheme",
		"/run/agent.sock":                     "want scheme",
		"http://x:1":                          "unknown scheme",
		"vsock://-1":                          "CID:PORT",
		"vsock://x:1024":                      "invalid CID",
		"vsock://-1:port":                     "invalid port",
		"vsock://-2:1":                        "invalid CID",
		"unix://relative.sock":                "absolute",
		"unix://":                             "absolute",
		"unix://@":                            "abstract",
		"unix:///" + strings.Repeat("a", 200): "107 bytes",
		"tcp://127.0.0.1":                     "missing port",
		"tcp://127.0.0.1:70000":               "invalid port",
		"hvsock:///sock":                      "PORT",
		"hvsock://rel:1":                      "hvsock:///path",
		"unix:///a\x00b":                      "NUL",
	}
	for in, want := range bad {
		if _, err := ParseAddr(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAddr(%q) error = %v, want it to mention %q", in, err, want)
		}
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"vsock://-1:1024", "unix:///a", "unix://@x", "tcp://h:1", "hvsock:///p:1", "x://", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err != nil {
			return
		}
		// A parsed address must survive a round trip through its canonical form.
		b, err := ParseAddr(a.String())
		if err != nil || a != b {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", s, a, a.String(), b, err)
		}
	})
}
