package container_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/container"
)

const logName = "c1-0123456789abcdef-termination-log"

// termSpec is a container spec whose termination log is bound from src.
func termSpec(src string) *specs.Spec {
	return &specs.Spec{
		Annotations: map[string]string{container.TerminationPathAnnotation: "/dev/termination-log"},
		Mounts:      []specs.Mount{{Destination: "/dev/termination-log", Source: src, Type: "bind", Options: []string{"rbind"}}},
	}
}

func write(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The host gets the termination message of the file the runtime made for
// the container, and never a secret a path leads to instead.
func TestTerminationLog(t *testing.T) {
	cases := []struct {
		name string
		// lay out makes run and state, and returns the mount source.
		lay     func(t *testing.T, run, state string) string
		want    string
		refused bool
	}{
		{name: "the runtime's file", want: "bye\n", lay: func(t *testing.T, run, _ string) string {
			return write(t, filepath.Join(run, "shared", "containers", logName), "bye\n")
		}},
		{name: "capped at 4 KiB", want: strings.Repeat("x", 4096), lay: func(t *testing.T, run, _ string) string {
			return write(t, filepath.Join(run, "shared", "containers", logName), strings.Repeat("x", 5000))
		}},
		{name: "not written yet", lay: func(t *testing.T, run, _ string) string {
			return filepath.Join(run, "shared", "containers", logName)
		}},
		{name: "shared dir is a symlink to a secret", refused: true, lay: func(t *testing.T, run, state string) string {
			write(t, filepath.Join(state, logName), "registry-password")
			if err := os.MkdirAll(filepath.Join(run, "shared"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(state, filepath.Join(run, "shared", "containers")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(run, "shared", "containers", logName)
		}},
		{name: "file is a symlink to a secret", refused: true, lay: func(t *testing.T, run, state string) string {
			secret := write(t, filepath.Join(state, "auth.json"), "registry-password")
			link := filepath.Join(run, "shared", "containers", logName)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(secret, link); err != nil {
				t.Fatal(err)
			}
			return link
		}},
		{name: "a secret in the state dir", refused: true, lay: func(t *testing.T, _, state string) string {
			return write(t, filepath.Join(state, "image", "conf", "auth.json"), "registry-password")
		}},
		{name: "a storage under the run dir", refused: true, lay: func(t *testing.T, run, _ string) string {
			return write(t, filepath.Join(run, "sandbox", "storage", "vol", "key"), "volume data")
		}},
		{name: "another container's file", refused: true, lay: func(t *testing.T, run, _ string) string {
			return write(t, filepath.Join(run, "shared", "containers", "c2-0123456789abcdef-termination-log"), "c2's message")
		}},
		{name: "a second name of another file", refused: true, lay: func(t *testing.T, run, _ string) string {
			other := write(t, filepath.Join(run, "shared", "containers", "c1", "rootfs", "etc", "shadow"), "root:hash")
			link := filepath.Join(run, "shared", "containers", logName)
			if err := os.Link(other, link); err != nil {
				t.Fatal(err)
			}
			return link
		}},
		{name: "a fifo", refused: true, lay: func(t *testing.T, run, _ string) string {
			p := filepath.Join(run, "shared", "containers", logName)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			run, state := filepath.Join(dir, "run"), filepath.Join(dir, "state")
			if err := os.MkdirAll(run, 0o755); err != nil {
				t.Fatal(err)
			}
			src := c.lay(t, run, state)
			got, err := container.TerminationLog(termSpec(src), run, "c1")
			if c.refused {
				if got != "" || !errors.Is(err, errdefs.ErrPermissionDenied) {
					t.Fatalf("TerminationLog = %q, %v; want nothing and permission denied", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("TerminationLog = %q (%d bytes), %v; want %d bytes", got[:min(len(got), 40)], len(got), err, len(c.want))
			}
		})
	}
}
