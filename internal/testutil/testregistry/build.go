package testregistry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Layer changes a root file system; each one becomes one image layer.
type Layer func(t testing.TB, rootfs string)

// Build creates an OCI layout at dir/oci with tag "latest", one layer per
// Layer (umoci computes the diff, including whiteouts for deletions), and
// returns the "oci:DIR:latest" reference skopeo understands.
func Build(t testing.TB, dir string, cmd []string, layers ...Layer) string {
	t.Helper()
	layout := filepath.Join(dir, "oci")
	image := layout + ":latest"
	bundle := filepath.Join(dir, "bundle")
	Run(t, nil, "umoci", "init", "--layout", layout)
	Run(t, nil, "umoci", "new", "--image", image)
	for _, l := range layers {
		Run(t, nil, "umoci", "unpack", "--image", image, bundle)
		l(t, filepath.Join(bundle, "rootfs"))
		Run(t, nil, "umoci", "repack", "--image", image, bundle)
		if err := os.RemoveAll(bundle); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"config", "--image", image}
	for _, c := range cmd {
		args = append(args, "--config.cmd", c)
	}
	args = append(args, "--config.env", "COCOON_TEST=1", "--config.workingdir", "/")
	Run(t, nil, "umoci", args...)
	Run(t, nil, "umoci", "gc", "--layout", layout)
	return "oci:" + image
}

// Extend copies the OCI layout of image src ("oci:DIR:latest", from Build)
// to dir and adds layers on top, so both images share src's layers.
func Extend(t testing.TB, src, dir string, layers ...Layer) string {
	t.Helper()
	layout := filepath.Join(dir, "oci")
	from := strings.TrimSuffix(strings.TrimPrefix(src, "oci:"), ":latest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	Run(t, nil, "cp", "-a", from, layout)
	image := layout + ":latest"
	bundle := filepath.Join(dir, "bundle")
	for _, l := range layers {
		Run(t, nil, "umoci", "unpack", "--image", image, bundle)
		l(t, filepath.Join(bundle, "rootfs"))
		Run(t, nil, "umoci", "repack", "--image", image, bundle)
		if err := os.RemoveAll(bundle); err != nil {
			t.Fatal(err)
		}
	}
	Run(t, nil, "umoci", "gc", "--layout", layout)
	return "oci:" + image
}

// Files returns a Layer writing the given files (parents created).
func Files(files map[string]string) Layer {
	return func(t testing.TB, rootfs string) {
		t.Helper()
		for name, body := range files {
			p := filepath.Join(rootfs, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Remove returns a Layer deleting paths (a whiteout each).
func Remove(paths ...string) Layer {
	return func(t testing.TB, rootfs string) {
		t.Helper()
		for _, p := range paths {
			if err := os.RemoveAll(filepath.Join(rootfs, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Push copies src (any skopeo source) to the registry as repo:tag, with
// extra skopeo flags (signing, encryption, compression) and the environment
// env (GNUPGHOME for signing).
func (r *Registry) Push(t testing.TB, src, repoTag string, env []string, extra ...string) string {
	t.Helper()
	dest := "docker://" + r.Addr + "/" + repoTag
	args := []string{"copy", "--quiet", "--dest-tls-verify=false"}
	if r.User != "" {
		args = append(args, "--dest-creds", r.User+":"+r.Password)
	}
	args = append(args, extra...)
	args = append(args, src, dest)
	Run(t, env, "skopeo", args...)
	return r.Addr + "/" + repoTag
}
