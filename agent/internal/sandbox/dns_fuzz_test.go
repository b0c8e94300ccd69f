package sandbox

import (
	"strings"
	"testing"
)

// FuzzResolvConf: any dns list either is refused or yields lines that each
// start with an allowed directive and hold no control character.
func FuzzResolvConf(f *testing.F) {
	for _, s := range []string{"nameserver 10.0.0.1", "search a.b c.d", "options ndots:5 rotate", "# c", "", "nameserver ::1\x00", "sortlist x"} {
		f.Add(s, "nameserver 10.96.0.10")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		out, err := resolvConf([]string{a, b})
		if err != nil {
			return
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			if l == "" && len(out) == 0 {
				continue
			}
			k, _, _ := strings.Cut(l, " ")
			switch k {
			case "nameserver", "search", "domain", "options":
			default:
				t.Fatalf("line %q from %q, %q", l, a, b)
			}
			if strings.ContainsAny(l, "\x00\r\t") {
				t.Fatalf("control character in %q", l)
			}
		}
	})
}
