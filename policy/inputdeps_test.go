package policy

import (
	"context"
	"testing"
)

func TestReadsInput(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		reads      bool
	}{
		{"default only", "package agent_policy\ndefault ExecProcessRequest := false\n", false},
		{"constant rule", "package agent_policy\nimport rego.v1\nExecProcessRequest := true\n", false},
		{"undefined", "package agent_policy\ndefault OtherRequest := true\n", false},
		{"data only", "package agent_policy\nimport rego.v1\ndefault ExecProcessRequest := false\nExecProcessRequest if data.pstate.x == 1\n", false},
		{"direct", "package agent_policy\nimport rego.v1\ndefault ExecProcessRequest := false\nExecProcessRequest if input.process.Args[0] == \"ls\"\n", true},
		{"bare input", "package agent_policy\nimport rego.v1\nExecProcessRequest := count(input) > 0\n", true},
		{"via rule", "package agent_policy\nimport rego.v1\nExecProcessRequest if ok\nok if input.x\n", true},
		{"via function", "package agent_policy\nimport rego.v1\nExecProcessRequest if f(1)\nf(x) if input.y == x\n", true},
		{"via else", "package agent_policy\nimport rego.v1\nExecProcessRequest := false if data.pstate.q\nelse := input.z\n", true},
		{"via else of helper", "package agent_policy\nimport rego.v1\nExecProcessRequest := h\nh := 1 if data.pstate.q\nelse := input.z\n", true},
		{"with input", "package agent_policy\nimport rego.v1\nExecProcessRequest if g with input as {\"a\": 1}\ng := true\n", true},
		{"partial object", "package agent_policy\nimport rego.v1\nExecProcessRequest if { some k; helpers[k] == 2 }\nhelpers[k] := v if { some k, v in input.m }\n", true},
		{"print of input", "package agent_policy\nimport rego.v1\ndefault ExecProcessRequest := false\nExecProcessRequest if { print(input); false }\n", true},
	} {
		p, err := Load(context.Background(), tc.text, "test")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := p.readsInput("ExecProcessRequest"); got != tc.reads {
			t.Errorf("%s: readsInput %v, want %v", tc.name, got, tc.reads)
		}
	}
}
