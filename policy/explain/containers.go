package explain

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A check compares one aspect of the request with one policy container
// entry; it returns the field that differed and how, or "" when it holds.
type check func(p, i obj) (field, detail string)

// obj is a JSON object from the policy data or the request.
type obj = map[string]any

// containerChecks follow the order in which genpolicy's rules compare a
// CreateContainerRequest with a policy container, so the first failure is
// the one the rules stop at.
func containerChecks() []check {
	return []check{
		checkPidns,
		checkEqual("OCI.Version"),
		checkEqual("OCI.Root.Readonly"),
		checkAnnotation("io.kubernetes.cri.sandbox-namespace"),
		checkAnnotation("io.kubernetes.cri.container-type"),
		checkAnnotation("io.kubernetes.cri.container-name"),
		checkAnnotation("io.kubernetes.cri.image-name"),
		checkAnnotationKeys,
		checkStorages,
		checkMounts,
		checkArgs,
		checkEqual("OCI.Process.Cwd"),
		checkEqual("OCI.Process.NoNewPrivileges"),
		checkEqual("OCI.Process.User.UID"),
		checkEqual("OCI.Process.User.GID"),
		checkSet("OCI.Process.User.AdditionalGids"),
		checkEnv,
		checkCaps,
		checkEqual("OCI.Process.Terminal"),
		checkNamespaces,
		checkSubset("OCI.Linux.MaskedPaths"),
		checkSubset("OCI.Linux.ReadonlyPaths"),
		checkSysctl,
		checkDevices,
	}
}

// closestContainer compares the request with every policy_data.containers
// entry that carries an OCI spec. It reports false when the policy has no
// such entries, or when the closest entry matches every check (then the
// reason lies elsewhere in the rules).
func (e Evaluator) closestContainer(ctx context.Context, in ast.Value) (Finding, bool) {
	q := ast.NewBody(ast.Equality.Expr(ast.VarTerm("explain_policy_data"), ast.MustParseTerm(packagePath+".policy_data")))
	rs, err := e.query(ctx, q, in)
	if err != nil || len(rs) == 0 || rs[0]["explain_policy_data"] == nil {
		return Finding{}, false
	}
	pd, err := ast.JSON(rs[0]["explain_policy_data"])
	if err != nil {
		return Finding{}, false
	}
	data, _ := pd.(obj)
	containers, _ := data["containers"].([]any)
	req, err := ast.JSON(in)
	if err != nil {
		return Finding{}, false
	}
	ri, ok := req.(obj)
	if !ok {
		return Finding{}, false
	}
	return closest(data, containers, ri)
}

// closest is closestContainer over plain values.
func closest(data obj, containers []any, in obj) (Finding, bool) {
	f := Finding{Rule: "CreateContainerRequest", Container: -1}
	if field, detail := checkRequestShape(in); field != "" {
		f.Rule = "allow_create_container_input"
		f.Field, f.Detail = field, detail
		return f, true
	}
	envRegex := stringsAt(data, "request_defaults.CreateContainerRequest.allow_env_regex")
	checks := containerChecks()
	bestPassed := -1
	for idx, c := range containers {
		p, ok := c.(obj)
		if !ok || p["OCI"] == nil {
			continue
		}
		p = withEnvRegex(p, envRegex)
		passed, field, detail := 0, "", ""
		for _, ck := range checks {
			fl, d := ck(p, in)
			if fl == "" {
				passed++
			} else if field == "" {
				field, detail = fl, d
			}
		}
		if passed > bestPassed {
			bestPassed = passed
			f.Container, f.Passed, f.Checks = idx, passed, len(checks)
			f.Field, f.Detail = field, detail
		}
	}
	if f.Container < 0 || f.Field == "" {
		return f, false
	}
	return f, true
}

// envRegexKey carries the policy's allow_env_regex into the env check.
const envRegexKey = "\x00allow_env_regex"

func withEnvRegex(p obj, re []string) obj {
	if len(re) == 0 {
		return p
	}
	q := make(obj, len(p)+1)
	for k, v := range p {
		q[k] = v
	}
	q[envRegexKey] = re
	return q
}

// checkRequestShape is genpolicy's allow_create_container_input: fields a
// request must leave empty whatever the container.
func checkRequestShape(in obj) (string, string) {
	for _, path := range []string{"string_user", "OCI.Hooks", "OCI.Linux.Seccomp", "OCI.Linux.IntelRdt"} {
		if v := at(in, path); v != nil {
			return path, "got " + quote(v) + ", the policy requires it unset"
		}
	}
	if n := length(at(in, "shared_mounts")); n > 0 {
		return "shared_mounts", fmt.Sprintf("got %d, the policy allows none", n)
	}
	if u, _ := at(in, "OCI.Process.User.Username").(string); u != "" {
		return "OCI.Process.User.Username", "got " + quote(u) + ", the policy requires it empty"
	}
	return "", ""
}

func checkPidns(p, i obj) (string, string) {
	if !same(p["sandbox_pidns"], i["sandbox_pidns"]) {
		return "sandbox_pidns", "got " + quote(i["sandbox_pidns"]) + ", policy allows " + quote(p["sandbox_pidns"])
	}
	return "", ""
}

// checkEqual compares one field exactly. Here and below, a field the
// policy entry does not have is not judged: the rules decide about it.
func checkEqual(path string) check {
	return func(p, i obj) (string, string) {
		pv, iv := at(p, path), at(i, path)
		if pv != nil && !same(pv, iv) {
			return path, "got " + quote(iv) + ", policy allows " + quote(pv)
		}
		return "", ""
	}
}

// checkAnnotation compares one annotation; the policy value may be a
// pattern, and an empty or absent policy value allows anything.
func checkAnnotation(key string) check {
	return func(p, i obj) (string, string) {
		pv, _ := annotations(p)[key].(string)
		iv, present := annotations(i)[key].(string)
		if pv == "" || (present && matches(pv, iv)) {
			return "", ""
		}
		return fmt.Sprintf("OCI.Annotations[%q]", key), "got " + quote(iv) + ", policy allows " + quote(pv)
	}
}

// checkAnnotationKeys: every request annotation must be named by the
// policy, match one of its runtime annotation patterns, or be one of the
// runtime's io.kubernetes.cri.* annotations.
func checkAnnotationKeys(p, i obj) (string, string) {
	pa := annotations(p)
	patterns, _ := p["runtime_anno_patterns"].(obj)
	for _, k := range sortedKeys(annotations(i)) {
		if strings.HasPrefix(k, "io.kubernetes.cri.") {
			continue
		}
		if _, ok := pa[k]; ok {
			continue
		}
		if anyPattern(patterns, k, annotations(i)[k]) {
			continue
		}
		return fmt.Sprintf("OCI.Annotations[%q]", k), "not in the policy (value " + quote(annotations(i)[k]) + ")"
	}
	return "", ""
}

func anyPattern(patterns obj, k string, v any) bool {
	vs, _ := v.(string)
	for pk, pv := range patterns {
		ps, _ := pv.(string)
		if regexMatch(pk, k) && regexMatch(ps, vs) {
			return true
		}
	}
	return false
}

// checkStorages: each request storage must have a policy storage with the
// same driver and a matching source and mount point. Guest-pulled images
// are checked only when the policy lists such storages itself.
func checkStorages(p, i obj) (string, string) {
	ps, _ := p["storages"].([]any)
	is, _ := i["storages"].([]any)
	for n, s := range is {
		so, _ := s.(obj)
		driver, _ := so["driver"].(string)
		var cands []obj
		for _, c := range ps {
			if co, _ := c.(obj); co != nil && co["driver"] == driver {
				cands = append(cands, co)
			}
		}
		if len(cands) == 0 {
			if driver == "image_guest_pull" {
				continue
			}
			return fmt.Sprintf("storages[%d]", n), "driver " + quote(driver) + " at " + quote(so["mount_point"]) + " is not in the policy"
		}
		field, detail := "", ""
		for _, c := range cands {
			f, d := storageDiff(c, so)
			if f == "" {
				field = ""
				break
			}
			if field == "" {
				field, detail = f, d
			}
		}
		if field != "" {
			return fmt.Sprintf("storages[%d].%s", n, field), detail
		}
	}
	return "", ""
}

func storageDiff(p, i obj) (string, string) {
	for _, k := range []string{"source", "mount_point", "fstype"} {
		pv, _ := p[k].(string)
		iv, _ := i[k].(string)
		if !matches(pv, iv) {
			return k, "got " + quote(iv) + ", policy allows " + quote(pv)
		}
	}
	return "", ""
}

// checkMounts: each request mount needs a policy mount with the same
// destination, type and a matching source.
func checkMounts(p, i obj) (string, string) {
	pm, _ := at(p, "OCI.Mounts").([]any)
	im, _ := at(i, "OCI.Mounts").([]any)
	for _, m := range im {
		mo, _ := m.(obj)
		dest, _ := mo["destination"].(string)
		name := fmt.Sprintf("OCI.Mounts[destination=%q]", dest)
		var cand obj
		for _, c := range pm {
			if co, _ := c.(obj); co != nil && co["destination"] == dest {
				cand = co
				break
			}
		}
		if cand == nil {
			return name, "not in the policy (source " + quote(mo["source"]) + ")"
		}
		if !same(cand["type_"], mo["type_"]) {
			return name + ".type_", "got " + quote(mo["type_"]) + ", policy allows " + quote(cand["type_"])
		}
		ps, _ := cand["source"].(string)
		is, _ := mo["source"].(string)
		if ps != "" && !matches(ps, is) {
			return name + ".source", "got " + quote(is) + ", policy allows " + quote(ps)
		}
	}
	return "", ""
}

// checkArgs compares the command line argument by argument.
func checkArgs(p, i obj) (string, string) {
	pa := stringsAt(p, "OCI.Process.Args")
	ia := stringsAt(i, "OCI.Process.Args")
	for n := 0; n < len(pa) || n < len(ia); n++ {
		field := fmt.Sprintf("OCI.Process.Args[%d]", n)
		switch {
		case n >= len(pa):
			return field, "got " + quote(ia[n]) + ", policy allows no argument " + fmt.Sprint(n)
		case n >= len(ia):
			return field, "missing, policy expects " + quote(pa[n])
		case !argMatches(pa[n], ia[n]):
			return field, "got " + quote(ia[n]) + ", policy allows " + quote(pa[n])
		}
	}
	return "", ""
}

func argMatches(p, i string) bool {
	p = strings.ReplaceAll(p, "$$", "$")
	return p == i || strings.Contains(p, "$(node-name)") || placeholderMatch(p, i)
}

// checkEnv: every request variable must be one the policy lists (with its
// placeholders) or match the policy's allow_env_regex.
func checkEnv(p, i obj) (string, string) {
	pe := stringsAt(p, "OCI.Process.Env")
	re, _ := p[envRegexKey].([]string)
	for _, v := range stringsAt(i, "OCI.Process.Env") {
		if envAllowed(v, pe, re) {
			continue
		}
		name, _, _ := strings.Cut(v, "=")
		detail := "got " + quote(v) + ", not in the policy"
		for _, x := range pe {
			if pn, _, _ := strings.Cut(x, "="); pn == name {
				detail = "got " + quote(v) + ", policy allows " + quote(x)
				break
			}
		}
		return "OCI.Process.Env[" + name + "]", detail
	}
	return "", ""
}

func envAllowed(v string, policy, regexes []string) bool {
	for _, x := range policy {
		if x == v || placeholderMatch(x, v) {
			return true
		}
	}
	for _, r := range regexes {
		if regexMatch(placeholders.ReplaceAllString(r, ".*"), v) {
			return true
		}
	}
	return false
}

// checkCaps: each capability set of the request must be within the
// policy's; sets the policy gives as a placeholder are not judged here.
func checkCaps(p, i obj) (string, string) {
	for _, set := range []string{"Bounding", "Effective", "Inheritable", "Permitted", "Ambient"} {
		path := "OCI.Process.Capabilities." + set
		pc := stringsAt(p, path)
		if at(p, path) == nil || hasPlaceholder(pc) {
			continue
		}
		allowed := map[string]bool{}
		for _, c := range pc {
			allowed[c] = true
		}
		for _, c := range stringsAt(i, path) {
			if !allowed[c] {
				return path, "got " + quote(c) + ", policy allows " + quote(pc)
			}
		}
	}
	return "", ""
}

// checkNamespaces compares the namespace types, leaving out the network
// and cgroup namespaces the runtime adds or strips.
func checkNamespaces(p, i obj) (string, string) {
	types := func(o obj) []string {
		var out []string
		l, _ := at(o, "OCI.Linux.Namespaces").([]any)
		for _, n := range l {
			no, _ := n.(obj)
			t, _ := no["Type"].(string)
			if t != "network" && t != "cgroup" {
				out = append(out, t)
			}
		}
		return out
	}
	if at(p, "OCI.Linux.Namespaces") == nil {
		return "", ""
	}
	pt, it := types(p), types(i)
	if !same(toAny(pt), toAny(it)) {
		return "OCI.Linux.Namespaces", "got " + quote(it) + ", policy allows " + quote(pt)
	}
	return "", ""
}

// checkSubset: every path the policy lists must be in the request.
func checkSubset(path string) check {
	return func(p, i obj) (string, string) {
		have := map[string]bool{}
		for _, s := range stringsAt(i, path) {
			have[s] = true
		}
		if strings.HasSuffix(path, "ReadonlyPaths") {
			for _, s := range stringsAt(i, "OCI.Linux.MaskedPaths") {
				have[s] = true
			}
		}
		for _, s := range stringsAt(p, path) {
			if !have[s] {
				return path, "missing " + quote(s) + ", which the policy requires"
			}
		}
		return "", ""
	}
}

// checkSet compares two lists as sets.
func checkSet(path string) check {
	return func(p, i obj) (string, string) {
		ps, is := map[string]bool{}, map[string]bool{}
		pl, ok := at(p, path).([]any)
		if !ok {
			return "", ""
		}
		il, _ := at(i, path).([]any)
		for _, v := range pl {
			ps[quote(v)] = true
		}
		for _, v := range il {
			is[quote(v)] = true
		}
		if len(ps) != len(is) {
			return path, "got " + quote(il) + ", policy allows " + quote(pl)
		}
		for k := range is {
			if !ps[k] {
				return path, "got " + quote(il) + ", policy allows " + quote(pl)
			}
		}
		return "", ""
	}
}

// checkSysctl: every sysctl the request sets must have the policy's value.
func checkSysctl(p, i obj) (string, string) {
	ps, ok := at(p, "OCI.Linux.Sysctl").(obj)
	if !ok {
		return "", ""
	}
	is, _ := at(i, "OCI.Linux.Sysctl").(obj)
	for _, k := range sortedKeys(is) {
		if !same(ps[k], is[k]) {
			return fmt.Sprintf("OCI.Linux.Sysctl[%q]", k), "got " + quote(is[k]) + ", policy allows " + quote(ps[k])
		}
	}
	return "", ""
}

// checkDevices: every device of the request must be at a container path
// the policy lists.
func checkDevices(p, i obj) (string, string) {
	pd, _ := p["devices"].([]any)
	id, _ := i["devices"].([]any)
	allowed := map[string]bool{}
	for _, d := range pd {
		if do, _ := d.(obj); do != nil {
			cp, _ := do["container_path"].(string)
			allowed[cp] = true
		}
	}
	for n, d := range id {
		do, _ := d.(obj)
		cp, _ := do["container_path"].(string)
		if !allowed[cp] && !strings.HasPrefix(cp, "/dev/vfio/") {
			return fmt.Sprintf("devices[%d].container_path", n), "got " + quote(cp) + ", not in the policy"
		}
	}
	return "", ""
}

// at walks a dotted path through nested objects.
func at(o obj, path string) any {
	var cur any = o
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(obj)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func annotations(o obj) obj {
	a, _ := at(o, "OCI.Annotations").(obj)
	return a
}

func stringsAt(o obj, path string) []string {
	l, _ := at(o, path).([]any)
	out := make([]string, 0, len(l))
	for _, v := range l {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func length(v any) int {
	switch x := v.(type) {
	case []any:
		return len(x)
	case obj:
		return len(x)
	}
	return 0
}

func sortedKeys(o obj) []string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// same compares two JSON values by their encoding (maps encode sorted).
func same(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// placeholders are genpolicy's $(name) substitutions.
var placeholders = regexp.MustCompile(`\$\([a-z0-9_-]+\)`)

func hasPlaceholder(l []string) bool {
	for _, s := range l {
		if placeholders.MatchString(s) {
			return true
		}
	}
	return false
}

// matches compares a policy value with a request value: equal, or — when
// the policy value is a regular expression (starts with ^) or holds
// $(...) placeholders — matching it with every placeholder as a wildcard.
func matches(p, i string) bool {
	if p == i {
		return true
	}
	if strings.HasPrefix(p, "^") {
		return regexMatch(placeholders.ReplaceAllString(p, ".*"), i)
	}
	return placeholderMatch(p, i)
}

// placeholderMatch matches a literal with $(...) wildcards, anchored; a
// trailing $ (genpolicy's mount sources) is an anchor.
func placeholderMatch(p, i string) bool {
	if !placeholders.MatchString(p) {
		return false
	}
	p = strings.TrimSuffix(p, "$")
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, loc := range placeholders.FindAllStringIndex(p, -1) {
		b.WriteString(regexp.QuoteMeta(p[last:loc[0]]))
		b.WriteString(".*")
		last = loc[1]
	}
	b.WriteString(regexp.QuoteMeta(p[last:]))
	b.WriteString("$")
	return regexMatch(b.String(), i)
}

func regexMatch(re, s string) bool {
	r, err := regexp.Compile(re)
	return err == nil && r.MatchString(s)
}
