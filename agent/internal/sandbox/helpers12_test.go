package sandbox_test

import (
	"context"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
	"github.com/cocoon-tee/cocoon/agent/internal/stream"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// newPodOpts is newPod with options of the test's choosing.
func newPodOpts(t *testing.T, tweak func(o *sandbox.Options)) *pod {
	t.Helper()
	testenv.RequiresRoot(t)
	dir := t.TempDir()
	p := &pod{run: filepath.Join(dir, "run"), state: filepath.Join(dir, "state"), cgroup: testenv.CgroupParent(t)}
	o := sandbox.Options{KataRunDir: p.run, StateDir: p.state, CgroupParent: p.cgroup}
	tweak(&o)
	p.state = o.StateDir
	sb, err := sandbox.New(o)
	if err != nil {
		t.Fatal(err)
	}
	p.Sandbox = sb
	t.Cleanup(func() {
		if err := sb.Destroy(context.Background()); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	return p
}

// output creates, starts and waits for a container and returns its stdout.
func (p *pod) output(t *testing.T, r sandbox.ContainerRequest) string {
	t.Helper()
	ctx := context.Background()
	c, err := p.CreateContainer(ctx, r)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", r.ID, err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	out := readAll(t, c.Init().IO, stream.Stdout)
	errOut := readAll(t, c.Init().IO, stream.Stderr)
	if st, err := c.Init().Wait(ctx); err != nil || st != 0 {
		t.Fatalf("container %s: status %d, %v; stderr %q", r.ID, st, err, errOut)
	}
	if err := p.Remove(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	return out
}

func bindAt(s *specs.Spec, src, dest string, opts ...string) *specs.Spec {
	s.Mounts = append(s.Mounts, specs.Mount{Destination: dest, Source: src, Type: "bind", Options: append([]string{"rbind"}, opts...)})
	return s
}
