//go:build katacompat

package input_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/cocoon-tee/cocoon/policy/input"
)

// Every request recorded in Kata's genpolicy test cases (extracted by
// ci/kata-compat.sh into KATA_TESTDATA) encodes identically both ways.
func TestValueMatchesEncodeOnKataRequests(t *testing.T) {
	vs := &input.Values{}
	dir := os.Getenv("KATA_TESTDATA")
	if dir == "" {
		t.Fatal("-tags katacompat needs KATA_TESTDATA (see ci/kata-compat.sh)")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.testcases.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Kata test cases: %v", err)
	}
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cases []struct {
			Description string          `json:"description"`
			Kind        string          `json:"kind"`
			Request     json.RawMessage `json:"request"`
		}
		if err := json.Unmarshal(raw, &cases); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			m, err := input.NewRequest(c.Kind)
			if err != nil {
				t.Fatal(err)
			}
			if c.Kind == "CopyFileRequest" {
				continue // its recorded request is the derived input, not the message
			}
			if err := input.Decode(c.Request, m); err != nil {
				t.Fatalf("%s: %v", c.Description, err)
			}
			sameInput(t, vs, c.Description, m)
			n++
		}
	}
	if n < 20 {
		t.Fatalf("only %d recorded requests compared", n)
	}
}
