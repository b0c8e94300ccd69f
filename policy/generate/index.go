package generate

import (
	"regexp/syntax"
	"strings"
)

// The structures below exist so that the rules can decide with lookups
// instead of trying every rule: OPA spends a few microseconds on every
// expression it evaluates, so a CreateContainer decision costs roughly the
// number of expressions it runs. Each one decides exactly what the list it
// is derived from decides.

// exactMounts are the pod-wide mount rules whose source pattern only
// matches one string, by destination, type and source, each giving
// whether the mount must be read-only. A lookup replaces a regex per
// mount for the runtime's fixed mounts (proc, sysfs, the shm bind, ...).
type exactMounts map[string]map[string]map[string]bool

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
// an exactMounts index. A destination, type and source allowed both
// read-write and read-only only by read-only rules stays read-only.
func splitMounts(rules mountRules) (mountRules, exactMounts) {
	rest, exact := mountRules{}, exactMounts{}
	for dest, rs := range rules {
		for _, r := range rs {
			src, ok := literal(r.Source)
			if !ok {
				rest.add(r)
				continue
			}
			if exact[dest] == nil {
				exact[dest] = map[string]map[string]bool{}
			}
			if exact[dest][r.Type] == nil {
				exact[dest][r.Type] = map[string]bool{}
			}
			ro, seen := exact[dest][r.Type][src]
			// Several rules for one mount: the most permissive wins, as
			// any of them matching allows the mount.
			exact[dest][r.Type][src] = r.ReadOnly && (!seen || ro)
		}
	}
	return rest, exact
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
