package generate

import (
	"regexp"
	"testing"
	"unicode/utf8"
)

// FuzzExpandRefs: the text is the kubelet's expansion with the values
// known only by form left as written, and when it has such references
// the form matches what the kubelet makes of s once the value is known
// (and only then is there a form).
func FuzzExpandRefs(f *testing.F) {
	for _, s := range []string{
		"--a=$(A)", "--b=$(B)", "$$(B)", "$(B", "$(B$$)", "$(C)", "$", "x$", "$x$(B)$$", "$(A)$(B)-$(B)", "(?.*)$(B)[",
	} {
		f.Add(s)
	}
	vars := map[string]string{"A": "a.*"}
	forms := map[string]string{"B": `[0-9]+`}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			// The pod spec is YAML, read as UTF-8.
			return
		}
		x := expandRefs(s, vars, forms)
		if want := kubeletExpand(s, vars); x.Text != want {
			t.Fatalf("%q: text %q, the kubelet leaves %q", s, x.Text, want)
		}
		full := kubeletExpand(s, map[string]string{"A": "a.*", "B": "42"})
		if x.Form == "" {
			if full != x.Text {
				t.Fatalf("%q: no form, but B's value changes it to %q", s, full)
			}
			return
		}
		re, err := regexp.Compile("^(?:" + x.Form + ")$")
		if err != nil {
			t.Fatalf("%q: form %q: %v", s, x.Form, err)
		}
		if !re.MatchString(full) {
			t.Fatalf("%q: form %q does not match the kubelet's %q", s, x.Form, full)
		}
		if re.MatchString(x.Text) && x.Text != full {
			t.Fatalf("%q: form %q matches the unexpanded %q", s, x.Form, x.Text)
		}
	})
}
