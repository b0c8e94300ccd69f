//go:build katacompat

package protocols_test

// Run by ci/kata-compat.sh, which compiles the agent protos of every
// supported Kata release into KATA_PROTOS/<tag>.pb.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

func TestProtosMatchSupportedKataReleases(t *testing.T) {
	dir, refs := os.Getenv("KATA_PROTOS"), strings.Fields(os.Getenv("KATA_PROTO_REFS"))
	if dir == "" || len(refs) == 0 {
		t.Fatal("KATA_PROTOS and KATA_PROTO_REFS must be set: run ci/kata-compat.sh")
	}
	ours := collect(t)
	for _, ref := range refs {
		data, err := os.ReadFile(filepath.Join(dir, ref+".pb"))
		if err != nil {
			t.Fatalf("Kata %s: %v", ref, err)
		}
		var set descriptorpb.FileDescriptorSet
		if err := proto.Unmarshal(data, &set); err != nil {
			t.Fatalf("Kata %s: %v", ref, err)
		}
		drift, err := releaseDrift(ours, &set)
		if err != nil {
			t.Fatalf("Kata %s: %v", ref, err)
		}
		for _, d := range drift {
			t.Errorf("Kata %s: %s", ref, d)
		}
		if len(drift) == 0 {
			t.Logf("Kata %s: every message, field, enum and rpc matches", ref)
		}
	}
}
