package generate

import (
	"encoding/json"
	"regexp/syntax"
	"slices"
	"strings"
)

// The structures below exist so that the rules can decide with lookups
// instead of trying every rule: OPA spends a few microseconds on every
// expression it evaluates and more on each function call, so a
// CreateContainer decision costs roughly the number of expressions and
// calls it runs, and the data is shaped for comparisons OPA makes in one
// step (==, object.subset, set difference). Each structure decides exactly
// what the list it is derived from decides.

// exactMounts are the pod-wide mount rules whose source pattern only
// matches one string, by destination: a comparison replaces a regex per
// mount for the runtime's fixed mounts (proc, sysfs, the shm bind, ...).
type exactMounts map[string][]exactMount

// exactMount is one fixed mount the rules allow: its destination, type,
// source and option list, written as the request writes a mount (the
// agent's Mount message: these four fields, all present), so the rules
// find a request's mount with one "in" of the mount itself. A mount that
// carries any other field is not equal to it, and is compared field by
// field (exact_mount_ok), which only slows it down.
type exactMount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type_"`
	Source      string   `json:"source"`
	Options     []string `json:"options"`
}

// mountRule is a mount rule as the rules read it: the type (compared with
// object.subset), the option lists allowed, one of which the mount's
// options must equal ("in", one step), and the source regex.
type mountRule struct {
	Match   mountMatch `json:"match"`
	Options [][]string `json:"options"`
	Source  string     `json:"source"`
}

type mountMatch struct {
	Type string `json:"type_"`
}

// MarshalJSON writes the rules by destination in the rules' shape: the
// rules of one type and source are one, with all their option lists (a
// read-only and a read-write /etc/hostname, the cgroup mount with and
// without the host's extras), so a mount is tried once.
func (r mountRules) MarshalJSON() ([]byte, error) {
	out := make(map[string][]mountRule, len(r))
	for dest, ms := range r {
		var rules []mountRule
	next:
		for _, m := range ms {
			for i := range rules {
				if rules[i].Match.Type == m.Type && rules[i].Source == m.Source {
					rules[i].Options = addOptions(rules[i].Options, m.options())
					continue next
				}
			}
			rules = append(rules, mountRule{Match: mountMatch{Type: m.Type}, Options: [][]string{m.options()}, Source: m.Source})
		}
		out[dest] = rules
	}
	return json.Marshal(out)
}

// addOptions adds an option list unless it is there already.
func addOptions(lists [][]string, opts []string) [][]string {
	if slices.ContainsFunc(lists, func(l []string) bool { return slices.Equal(l, opts) }) {
		return lists
	}
	return append(lists, opts)
}

// expected is the part of a workload container's CreateContainerRequest
// that has one value the entry allows, in the request's shape: the rules
// compare it with the request in one object.subset call (ok_expected),
// and only when that fails test the fields one by one. Every value here
// must be one its field's test allows, and every field of the tests that
// ok_expected stands for must be here unless its test allows any value
// for this entry (a sidecar's cwd and gid, no masked paths), else the
// fast path would allow what the tests deny. Fields whose test allows
// several values carry the one the runtime sends (no SELinux label,
// containerd's seccomp default action, the first root propagation), and
// an array means its elements as a run of the request's array, so it is
// given only for "must contain all of" (masked and read-only paths, in
// the runtime's order) and never empty (regorus refuses an empty run).
func expected(d *containerData, a Annotations) map[string]any {
	user := map[string]any{"UID": d.UID, "Username": ""}
	if d.GID != nil {
		user["GID"] = *d.GID
	}
	process := map[string]any{
		"User": user, "Terminal": d.TTY, "NoNewPrivileges": d.NoNewPrivs, "SelinuxLabel": "",
	}
	if d.Cwd != "" {
		process["Cwd"] = d.Cwd
	}
	linux := map[string]any{
		"MountLabel": "", "IntelRdt": nil,
		// ok_resources: the limits the runtime never sends.
		"Resources": map[string]any{"Pids": nil, "BlockIO": nil, "Network": nil},
		// The first value allowed: "", private, unless a volumeMount
		// asks for propagation (rootfsPropagation always lists it).
		"RootfsPropagation": d.RootfsPropagation[0],
		// No profile, or, when the pod asks for one, containerd's
		// default action (ok_seccomp allows any that refuses).
		"Seccomp": nil,
	}
	if d.Seccomp == "required" {
		linux["Seccomp"] = map[string]any{"DefaultAction": "SCMP_ACT_ERRNO"}
	}
	if len(d.MaskedPaths) > 0 {
		linux["MaskedPaths"] = d.MaskedPaths
	}
	if len(d.ReadonlyPaths) > 0 {
		linux["ReadonlyPaths"] = d.ReadonlyPaths
	}
	return map[string]any{
		"OCI": map[string]any{
			"Annotations": map[string]any{a.ImageName: d.Image},
			"Root":        map[string]any{"Readonly": d.ReadonlyRoot},
			"Process":     process,
			"Linux":       linux,
			"Hostname":    "",
			"Hooks":       nil,
		},
		"sandbox_pidns": d.SharePID,
		"string_user":   nil,
	}
}

// literal returns the one string an anchored pattern ("^...$") matches,
// or false when it matches more than one.
func literal(pattern string) (string, bool) {
	// The rules match with Go's regexp (OPA's regex.match), whose syntax
	// flags are syntax.Perl.
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", false
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 {
		return "", false
	}
	first, last := re.Sub[0], re.Sub[len(re.Sub)-1]
	if first.Op != syntax.OpBeginText || last.Op != syntax.OpEndText {
		return "", false
	}
	var b strings.Builder
	for _, s := range re.Sub[1 : len(re.Sub)-1] {
		if s.Op != syntax.OpLiteral || s.Flags&syntax.FoldCase != 0 {
			return "", false
		}
		b.WriteString(string(s.Rune))
	}
	return b.String(), true
}

// splitMounts moves the rules with a literal source out of rules into
// an exactMounts index, one entry per destination, type, source and
// option list a rule allows there.
func splitMounts(rules mountRules) (mountRules, exactMounts) {
	rest, exact := mountRules{}, exactMounts{}
	for dest, rs := range rules {
		for _, r := range rs {
			src, ok := literal(r.Source)
			if !ok {
				rest.add(r)
				continue
			}
			e := exactMount{Destination: dest, Type: r.Type, Source: src, Options: r.options()}
			if !slices.ContainsFunc(exact[dest], e.equal) {
				exact[dest] = append(exact[dest], e)
			}
		}
	}
	// Sorted by type and source (the option lists of one in the order the
	// rules give them), so the same settings always render the same
	// policy.
	for _, ms := range exact {
		slices.SortStableFunc(ms, func(a, b exactMount) int {
			return strings.Compare(a.Type+"\x00"+a.Source, b.Type+"\x00"+b.Source)
		})
	}
	return rest, exact
}

func (m exactMount) equal(o exactMount) bool {
	return m.Destination == o.Destination && m.Type == o.Type && m.Source == o.Source && slices.Equal(m.Options, o.Options)
}

// anyOf joins patterns into one that matches what any of them matches
// ("" when there are none), so the rules try one regex instead of each.
func anyOf(patterns []string) string {
	if len(patterns) == 0 {
		return ""
	}
	parts := make([]string, len(patterns))
	for i, p := range patterns {
		parts[i] = "(?:" + p + ")"
	}
	return strings.Join(parts, "|")
}

// namespaceSpec is a namespace as the runtime sends it in
// OCI.Linux.Namespaces: its type, and no path.
type namespaceSpec struct {
	Path string `json:"Path"`
	Type string `json:"Type"`
}

// namespaceSpecs are the namespaces of types, in their order, as the
// runtime sends them: the rules compare the request's list with them in
// one step.
func namespaceSpecs(types []string) []namespaceSpec {
	out := make([]namespaceSpec, 0, len(types))
	for _, t := range types {
		out = append(out, namespaceSpec{Type: t})
	}
	return out
}
