package policy

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// Policies shipped in the agent binary (also installed in the rootfs).
const (
	AllowAll            = "allow-all"
	AllowAllExceptExec  = "allow-all-except-exec"
	CocoDefault         = "coco-default"
	DefaultPolicyFile   = "/etc/kata-opa/default-policy.rego"
	builtinSourcePrefix = "builtin:"
)

//go:embed rego/*.rego
var shipped embed.FS

// Builtin returns the text of a shipped policy.
func Builtin(name string) (string, error) {
	b, err := shipped.ReadFile("rego/" + name + ".rego")
	if err != nil {
		return "", fmt.Errorf("no built-in policy %q (have %s)", name, strings.Join(BuiltinNames(), ", "))
	}
	return string(b), nil
}

// BuiltinNames lists the shipped policies.
func BuiltinNames() []string {
	ents, _ := fs.ReadDir(shipped, "rego")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".rego"))
	}
	sort.Strings(names)
	return names
}
