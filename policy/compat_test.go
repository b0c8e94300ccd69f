//go:build katacompat

package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/policy"
	"github.com/cocoon-tee/cocoon/policy/input"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// testCase is one entry of Kata's genpolicy testcases.json.
type testCase struct {
	Description string          `json:"description"`
	Allowed     bool            `json:"allowed"`
	Kind        string          `json:"kind"`
	Request     json.RawMessage `json:"request"`
}

func loadCases(t testing.TB, name string) []testCase {
	t.Helper()
	var cs []testCase
	if err := json.Unmarshal([]byte(kataFile(t, name+".testcases.json")), &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// kataInput turns a test case's request into the policy input the way
// Kata's harness does: deserialise with serde defaults, serialise again.
func kataInput(t testing.TB, c testCase) map[string]any {
	t.Helper()
	if c.Kind == "CopyFileRequest" {
		var doc map[string]any
		dec := json.NewDecoder(bytes.NewReader(c.Request))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return input.CopyFileDefaults(doc)
	}
	m, err := input.NewRequest(c.Kind)
	if err != nil {
		t.Fatal(err)
	}
	if err := input.Decode(c.Request, m); err != nil {
		t.Fatalf("%s: %v", c.Description, err)
	}
	return input.Encode(m)
}

// genpolicyText assembles a policy the way genpolicy does: the rules, then
// `policy_data := {...}` built from the settings file. containers is the
// per-pod part (empty for the request kinds that do not consult it).
func genpolicyText(t testing.TB, containers []any) string {
	t.Helper()
	var settings map[string]any
	dec := json.NewDecoder(strings.NewReader(kataFile(t, "genpolicy-settings.json")))
	dec.UseNumber()
	if err := dec.Decode(&settings); err != nil {
		t.Fatal(err)
	}
	// genpolicy serialises sandbox storages through the agent's Storage
	// type, which spells out every field.
	sandbox := settings["sandbox"].(map[string]any)
	var storages []any
	for _, s := range sandbox["storages"].([]any) {
		raw, _ := json.Marshal(s)
		st := &agentpb.Storage{}
		if err := input.Decode(raw, st); err != nil {
			t.Fatal(err)
		}
		storages = append(storages, input.Encode(st))
	}
	sandbox["storages"] = storages
	// Fields genpolicy reads but does not write into the policy.
	vfio := settings["devices"].(map[string]any)["vfio"].(map[string]any)
	delete(vfio, "anno_key_regex")
	nv := vfio["nvidia"].(map[string]any)
	for _, k := range []string{"gpu_anno_value_regex", "gpu_gk_device_type", "pgpu_resource_keys"} {
		delete(nv, k)
	}
	if containers == nil {
		containers = []any{}
	}
	data := map[string]any{
		"containers":       containers,
		"common":           settings["common"],
		"sandbox":          sandbox,
		"request_defaults": settings["request_defaults"],
		"devices":          settings["devices"],
		"cluster_config":   settings["cluster_config"],
	}
	b, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return kataFile(t, "rules.rego") + "\npolicy_data := " + string(b) + "\n"
}

// Kata's own rules.rego with policy data assembled as genpolicy does decides
// Kata's test cases exactly as their testcases.json says.
func TestGenpolicyCompatibility(t *testing.T) {
	p := load(t, genpolicyText(t, nil))
	for _, set := range []string{"copyfile", "createsandbox", "updateroutes", "updateinterface", "addarpneighbors"} {
		cases := loadCases(t, set)
		if len(cases) == 0 {
			t.Fatalf("%s: no cases", set)
		}
		for _, c := range cases {
			d, err := p.Evaluate(context.Background(), c.Kind, kataInput(t, c))
			if err != nil {
				t.Errorf("%s / %s: %v", set, c.Description, err)
				continue
			}
			if d.Allowed != c.Allowed {
				t.Errorf("%s / %s: allowed=%v, want %v (prints: %.300s)", set, c.Description, d.Allowed, c.Allowed, d.Prints)
			}
		}
	}
}

// Re-encoding Kata's recorded requests reproduces them key for key: the
// golden shape of the input encoder (type_, nulls, enums as numbers, maps).
func TestEncoderGolden(t *testing.T) {
	for _, set := range []string{"createcontainer_sysctls", "createcontainer_env_vars", "state_execprocess", "updateinterface", "createsandbox"} {
		for _, c := range loadCases(t, set) {
			got := kataInput(t, c)
			var want map[string]any
			dec := json.NewDecoder(bytes.NewReader(c.Request))
			dec.UseNumber()
			if err := dec.Decode(&want); err != nil {
				t.Fatal(err)
			}
			if diffs := diffJSON("$", want, got); len(diffs) > 0 {
				sort.Strings(diffs)
				t.Errorf("%s / %s:\n  %s", set, c.Description, strings.Join(diffs[:min(len(diffs), 10)], "\n  "))
			}
		}
	}
}

// diffJSON reports where got differs from want, ignoring keys of want that
// Kata's own types no longer have (older recordings) — those are listed
// separately by knownStale.
func diffJSON(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want object, got %T", path, got)}
		}
		var out []string
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				if !knownStale[k] {
					out = append(out, path+"."+k+": missing")
				}
				continue
			}
			out = append(out, diffJSON(path+"."+k, wv, gv)...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %d elements, got %v", path, len(w), got)}
		}
		var out []string
		for i := range w {
			out = append(out, diffJSON(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return out
	}
	if !reflect.DeepEqual(want, got) {
		return []string{fmt.Sprintf("%s: want %v, got %v", path, want, got)}
	}
	return nil
}

// knownStale are keys in Kata's recorded requests that its current protos
// (and ours) renamed or never had; serde ignores them too.
var knownStale = map[string]bool{"pciPath": true, "additional_gids": true}

func TestGenpolicyFile(t *testing.T) {
	// The assembled policy is Rego v0 with future keywords: it must parse.
	if _, err := policy.Load(context.Background(), genpolicyText(t, nil), "genpolicy"); err != nil {
		t.Fatal(err)
	}
}
