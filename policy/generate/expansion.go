package generate

import (
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// anyValue is the form of an env var whose value the policy pins by name
// only (a Secret's, a ConfigMap not given, a label the YAML does not
// set): any text, newlines too.
const anyValue = `(?s:.*)`

// expansion is a command word or env value after the kubelet's $(VAR)
// expansion, as far as the policy knows the variables: Text has the
// known values substituted and the references to values known only by
// form left as written; Form, set only when there are such references,
// is the unanchored regex of every text the kubelet can make of it (the
// literal parts quoted, each such reference its form).
type expansion struct {
	Text string
	Form string
}

// expandRefs expands s as the kubelet does
// (k8s.io/kubernetes third_party/forked/golang/expansion/expand.go,
// Expand and tryReadVariableName): "$$" is "$"; "$(NAME)" is NAME's value
// when the container defines NAME (MappingFuncFor), else stays as
// written; a "$(" with no ")" after it stays, and the scan goes on after
// the "("; a "$" before anything else, or at the end, stays. vars are the
// values known, forms the unanchored regexes of the values known only by
// form.
func expandRefs(s string, vars, forms map[string]string) expansion {
	if !strings.Contains(s, "$") {
		return expansion{Text: s}
	}
	var text, re strings.Builder
	formed := false
	lit := func(x string) {
		text.WriteString(x)
		re.WriteString(regexp.QuoteMeta(x))
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			lit(s[i : i+1])
			continue
		}
		switch s[i+1] {
		case '$':
			lit("$")
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				lit("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			i += 2 + end
			if v, ok := vars[name]; ok {
				lit(v)
			} else if f, ok := forms[name]; ok {
				text.WriteString("$(" + name + ")")
				re.WriteString("(?:" + f + ")")
				formed = true
			} else {
				lit("$(" + name + ")")
			}
		default:
			// The "$" and the character after it are copied; the
			// character is no "$" or "(", so copying it on the next
			// turn is the same.
			lit("$")
		}
	}
	out := expansion{Text: text.String()}
	if formed {
		out.Form = re.String()
	}
	return out
}

// probeCommand is cmd as the kubelet runs an exec probe's: each word
// expanded (expandRefs) with the container's static env only
// (k8s.io/kubernetes pkg/kubelet/prober/prober.go runProbe calls
// kubecontainer.ExpandContainerCommandOnlyStatic, in
// pkg/kubelet/container/helpers.go, with container.Env; it maps each name
// to its Value (v1EnvVarsToMap) and runs expansion.Expand on each word).
// So a name set by valueFrom has Value "" and expands to "", the last
// entry of a name wins, a value's own references are not expanded, and
// envFrom and the image's env play no part: the result is fully known.
// Lifecycle hooks are not expanded (pkg/kubelet/lifecycle/handlers.go
// handlerRunner.Run passes handler.Exec.Command to RunInContainer as is).
func probeCommand(cmd []string, env []corev1.EnvVar) []string {
	static := make(map[string]string, len(env))
	for _, e := range env {
		static[e.Name] = e.Value
	}
	out := make([]string, len(cmd))
	for i, w := range cmd {
		out[i] = expandRefs(w, static, nil).Text
	}
	return out
}
