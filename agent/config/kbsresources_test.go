package config

import (
	"slices"
	"testing"
)

func TestParseKBSResources(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []KBSResource
		bad  bool
	}{
		// The example of CDH hub/src/config/mod.rs (doc comment of
		// extend_credentials_from_kernel_cmdline, guest-components 8246e5e0).
		{in: "kbs:///default/key/1::/run/temp1,kbs:///default/key/2::/run/temp2", want: []KBSResource{{"kbs:///default/key/1", "/run/temp1"}, {"kbs:///default/key/2", "/run/temp2"}}},
		{in: ""},
		{in: ",kbs:///a/b/c::/run/x,", want: []KBSResource{{"kbs:///a/b/c", "/run/x"}}},
		{in: "kbs:///a/b/c", bad: true},
		{in: "file:///etc/shadow::/run/x", bad: true},
		{in: "kbs:///a/b/c::run/x", bad: true},
		{in: "kbs:///a/b/c::/run/../etc/x", bad: true},
	} {
		got, err := ParseKBSResources(c.in)
		if (err != nil) != c.bad || !slices.Equal(got, c.want) {
			t.Errorf("%q: %v %v", c.in, got, err)
		}
	}
}

// A malformed image key on the command line is an error naming the key,
// like every other known key.
func TestImageCmdlineErrors(t *testing.T) {
	for _, cmdline := range []string{
		"cdh.kbs_resources=kbs:///a/b/c",
		"agent.enable_signature_verification=maybe",
		"agent.image_policy_file=",
		"agent.image_registry_auth=",
	} {
		if _, err := Load(Sources{Cmdline: cmdline, ReadFile: files(nil)}); err == nil {
			t.Errorf("%q accepted", cmdline)
		}
	}
	if _, err := Load(Sources{ReadFile: files(map[string]string{ImageFile: "kbs_resources = \"nope\"\n"})}); err == nil {
		t.Error("malformed kbs_resources in the image file accepted")
	}
}

func FuzzParseKBSResources(f *testing.F) {
	f.Add("kbs:///default/key/1::/run/temp1,kbs:///default/key/2::/run/temp2")
	f.Add("::,::/")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseKBSResources(s)
		if err != nil {
			return
		}
		for _, r := range rs {
			if r.Path == "" || r.Path[0] != '/' || r.URI == "" {
				t.Fatalf("%q gave %+v", s, r)
			}
		}
	})
}
