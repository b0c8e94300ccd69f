package generate

import (
	"encoding/json"
	"reflect"
	"regexp"
	"testing"
)

func TestLiteral(t *testing.T) {
	for pattern, want := range map[string]string{
		"^proc$":                             "proc",
		`^/run/kata-containers/sandbox/shm$`: "/run/kata-containers/sandbox/shm",
		`^a\.b$`:                             "a.b",
		"^$":                                 "",
		"^a.b$":                              "\x00no",
		"^proc":                              "\x00no",
		"proc$":                              "\x00no",
		"^(?i)proc$":                         "\x00no",
		"^pro[c]$":                           "proc", // one-rune class simplifies to a literal
		"^(proc|sys)$":                       "\x00no",
		`^/run/[a-z0-9]{64}-hosts$`:          "\x00no",
		"(":                                  "\x00no",
	} {
		got, ok := literal(pattern)
		if want == "\x00no" {
			if ok {
				t.Errorf("%q: literal %q, want none", pattern, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("%q: literal %q %v, want %q", pattern, got, ok, want)
		}
	}
}

// FuzzLiteral: when a pattern is taken for a string compare, the regex
// matches that string and nothing longer or shorter made from it.
func FuzzLiteral(f *testing.F) {
	for _, s := range []string{"^proc$", `^a\.b$`, "^a.b$", "^pro[c]$", "^$", "^(?i)x$", `^\Qa+b\E$`, "^x$|^y$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		s, ok := literal(pattern)
		if !ok {
			return
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			t.Fatalf("%q taken as literal %q but does not compile: %v", pattern, s, err)
		}
		if !re.MatchString(s) {
			t.Fatalf("%q does not match its literal %q", pattern, s)
		}
		for _, other := range []string{s + "x", "x" + s, s + "\n"} {
			if re.MatchString(other) {
				t.Fatalf("%q matches %q besides its literal %q", pattern, other, s)
			}
		}
	})
}

// TestSplitMounts: fixed sources move to the index, the rest stay regex
// rules, and each option list a rule allows for a mount is kept once, so
// a read-only and a read-write rule for one mount allow both.
func TestSplitMounts(t *testing.T) {
	rules := mountRules{}
	for _, m := range []Mount{
		{Destination: "/proc", Type: "proc", Source: "^proc$", Options: []string{"nosuid"}},
		{Destination: "/sys", Type: "sysfs", Source: "^sysfs$", ReadOnly: true, Options: []string{"ro"}},
		{Destination: "/x", Type: "bind", Source: "^/a$", ReadOnly: true},
		{Destination: "/x", Type: "bind", Source: "^/a$"},
		{Destination: "/x", Type: "bind", Source: "^/a$"},
		{Destination: "/etc/hosts", Type: "bind", Source: "^/shared/[a-z]+-hosts$"},
	} {
		rules.add(m)
	}
	rest, exact := splitMounts(rules)
	if len(rest) != 1 || len(rest["/etc/hosts"]) != 1 {
		t.Errorf("regex rules left: %v", rest)
	}
	want := exactMounts{
		"/proc": {{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid"}}},
		"/sys":  {{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"ro"}}},
		"/x": {
			{Destination: "/x", Type: "bind", Source: "/a", Options: []string{"rbind", "rprivate", "ro"}},
			{Destination: "/x", Type: "bind", Source: "/a", Options: []string{"rbind", "rprivate", "rw"}},
		},
	}
	if !reflect.DeepEqual(exact, want) {
		t.Errorf("exact mounts %v, want %v", exact, want)
	}
}

func TestAnyOf(t *testing.T) {
	if anyOf(nil) != "" {
		t.Error("no patterns must give no regex")
	}
	re := regexp.MustCompile(anyOf([]string{"^A=1$", "^B=[0-9]+$"}))
	for s, want := range map[string]bool{"A=1": true, "B=22": true, "A=12": false, "C=1": false, "xB=2": false} {
		if re.MatchString(s) != want {
			t.Errorf("%q: %v, want %v", s, !want, want)
		}
	}
}

// TestMountRulesJSON: the policy gets each rule as the match object the
// rules compare with a request's mount (its type), the option lists
// allowed (a bind without options has containerd's; the rules of one
// type and source are one, each list once) and its source regex; an exact
// mount is a whole mount as the request writes it, one per option list,
// and keeps its source even when it is empty, so a rule never drops to
// "any source".
func TestMountRulesJSON(t *testing.T) {
	rules := mountRules{}
	for _, m := range []Mount{
		{Destination: "/proc", Type: "proc", Source: "^proc$", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "^sysfs$", ReadOnly: true, Options: []string{"ro"}},
		{Destination: "/e", Type: "bind", Source: "^$"},
		{Destination: "/etc/hosts", Type: "bind", Source: "^/shared/[a-z]+-hosts$", ReadOnly: true},
		{Destination: "/etc/hosts", Type: "bind", Source: "^/shared/[a-z]+-hosts$"},
		{Destination: "/etc/hosts", Type: "bind", Source: "^/shared/[a-z]+-hosts$", ReadOnly: true},
	} {
		rules.add(m)
	}
	rest, exact := splitMounts(rules)
	for _, c := range []struct {
		v    any
		want string
	}{
		{rest, `{"/etc/hosts":[{"match":{"type_":"bind"},"options":[["rbind","rprivate","ro"],["rbind","rprivate","rw"]],"source":"^/shared/[a-z]+-hosts$"}]}`},
		{exact, `{"/e":[{"destination":"/e","type_":"bind","source":"","options":["rbind","rprivate","rw"]}],"/proc":[{"destination":"/proc","type_":"proc","source":"proc","options":["nosuid","noexec","nodev"]}],"/sys":[{"destination":"/sys","type_":"sysfs","source":"sysfs","options":["ro"]}]}`},
		{mountRules{}, `{}`},
	} {
		got, err := json.Marshal(c.v)
		if err != nil || string(got) != c.want {
			t.Errorf("%s %v, want %s", got, err, c.want)
		}
	}
}
