package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/stream"
)

// The unsealer sees the final environment and its result is what the
// container runs with; its error refuses the container, keeps its class and
// leaves nothing behind (the id can be used again).
func TestUnsealEnv(t *testing.T) {
	fail := errdefs.ErrPermissionDenied.WithMessage("signature does not verify")
	var seen []string
	p := newPodWith(t, func(_ context.Context, env []string) ([]string, error) {
		seen = slices.Clone(env)
		out := make([]string, 0, len(env))
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			if v == "sealed.bad" {
				return nil, fail
			}
			if v == "sealed.good" {
				v = "plain"
			}
			out = append(out, k+"="+v)
		}
		return out, nil
	})
	ctx := context.Background()
	root := p.rootfs(t, "c1")

	s := specFor(root, "sh", "-c", `echo -n "$S"`)
	s.Process.Env = append(s.Process.Env, "S=sealed.bad")
	_, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: s})
	if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "c1") {
		t.Fatalf("CreateContainer with an unsealing failure: %v", err)
	}
	if len(p.Containers()) != 0 {
		t.Fatalf("refused container registered: %v", p.Containers())
	}
	if _, err := os.Stat(filepath.Join(p.state, "containers", "c1")); !os.IsNotExist(err) {
		t.Fatalf("refused container left state behind: %v", err)
	}

	s = specFor(root, "sh", "-c", `echo -n "$S"`)
	s.Process.Env = append(s.Process.Env, "S=sealed.good")
	c, err := p.CreateContainer(ctx, sandbox.ContainerRequest{ID: "c1", Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(seen, "S=sealed.good") || !slices.Contains(seen, "PATH=/bin:/sbin") {
		t.Errorf("unsealer saw %q", seen)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c.Init().IO, stream.Stdout); got != "plain" {
		t.Errorf("container saw S=%q, want the unsealed value", got)
	}
	if st, err := c.Init().Wait(ctx); err != nil || st != 0 {
		t.Fatalf("status %d, %v", st, err)
	}
}
