package erofs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

const (
	pinned   = "ea1997fa68592d39cbe85d237d78652fed1cfe7dcb6780dfafa6e0d69ee83658"
	unpinned = "0b3a5e0ee3a4dca1c1f8a4d1d9b0f1c6c1a61f0a7e1e1c3e0c3a2e1d9b7a6c51"
)

// pinPolicy is docs/layers.md's example: allow-all with CreateContainer
// replaced by the snippet that pins root hashes. The test checks the page
// shows the snippet exactly as tested.
func pinPolicy(t *testing.T) string {
	t.Helper()
	snippet, err := os.ReadFile("testdata/pin-root-hashes.rego")
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile("../../../docs/layers.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), string(snippet)) {
		t.Errorf("docs/layers.md does not show testdata/pin-root-hashes.rego as it is")
	}
	all, err := os.ReadFile("../../../policy/rego/allow-all.rego")
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, l := range strings.Split(string(all), "\n") {
		if strings.HasPrefix(l, "default ") && !strings.HasPrefix(l, "default CreateContainerRequest ") {
			rules = append(rules, l)
		}
	}
	p := filepath.Join(t.TempDir(), "policy.rego")
	text := "package agent_policy\n\n" + string(snippet) + "\n" + strings.Join(rules, "\n") + "\n"
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// kataLayer is one lower layer as runtime-rs sends it in GPT mode.
func kataLayer(cid string, part, hash string) *agentpb.Storage {
	return &agentpb.Storage{
		Driver: "blk", Source: "02", Fstype: "erofs",
		MountPoint: "/run/kata-containers/shared/containers/" + cid + "/rootfs",
		Options: []string{
			"X-kata.overlay-lower", "X-kata.multi-layer=true", "X-kata.gpt-partitioned=true",
			"X-kata.partition-number=" + part, "X-kata.dmverity-enabled=true",
			"X-kata.dmverity.roothash=" + hash, "X-kata.dmverity.hashoffset=1052672",
			"X-kata.dmverity.no-superblock=false",
			"X-kata.dmverity.salt=" + strings.Repeat("0", 64),
		},
	}
}

func createReq(cid string, storages ...*agentpb.Storage) *agentpb.CreateContainerRequest {
	return &agentpb.CreateContainerRequest{
		ContainerId: cid, ExecId: cid, Storages: storages,
		OCI: &agentpb.Spec{
			Version: "1.1.0",
			Process: &agentpb.Process{Args: []string{"/bin/true"}, Cwd: "/", User: &agentpb.User{}},
			Root:    &agentpb.Root{Path: storages[0].MountPoint},
			Linux:   &agentpb.Linux{},
		},
	}
}

// Through the agent API: a policy that pins one root hash lets a layer
// with that hash through to the driver and refuses a layer with another,
// PERMISSION_DENIED naming the layer and both hashes, before any mount.
func TestPolicyPinsRootHashes(t *testing.T) {
	cfg := testagent.Config(t)
	cfg.PolicyFile = pinPolicy(t)
	c := testagent.Start(t, cfg, daemon.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The top layer is pinned, the one below is not.
	_, err := c.Agent.CreateContainer(ctx, createReq("c1", kataLayer("c1", "1", pinned), kataLayer("c1", "2", unpinned)))
	st, _ := status.FromError(err)
	want := (&erofs.RootHashDenied{Layer: "container c1 storage 1 (02 partition 2)", Got: unpinned, Allowed: []string{pinned}}).Error()
	if st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), want) {
		t.Fatalf("CreateContainer with an unpinned layer: %v\nwant PERMISSION_DENIED containing %q", err, want)
	}
	t.Logf("refused: %v", err)
	if _, err := os.Stat(filepath.Join(cfg.KataRunDir, "c1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("something of c1 was set up before the refusal: %v", err)
	}

	// Every layer pinned: the policy allows it and the driver runs. Here
	// the host kernel has no dm-verity (FAILED_PRECONDITION) or the test
	// disk is not attached (NOT_FOUND); either way it was not the policy.
	_, err = c.Agent.CreateContainer(ctx, createReq("c2", kataLayer("c2", "1", pinned)))
	if code := status.Code(err); code == codes.PermissionDenied || code == codes.OK ||
		(code != codes.FailedPrecondition && code != codes.NotFound) {
		t.Fatalf("CreateContainer with a pinned layer: %v; want the driver's refusal, not the policy's", err)
	}
	t.Logf("allowed, then: %v", err)
}
