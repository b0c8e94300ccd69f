package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Artifacts are the files a test VM boots from.
type Artifacts struct {
	Root string // repository root
	Dir  string // build/e2e
	// Kernel is the uncompressed vmlinux when the build produced one (fast
	// PVH boot), else the compressed vmlinuz.
	Kernel string
	// Initrd is the stage-1 initrd with the guestprobe archive appended.
	Initrd string
	// FullInitrd is the whole guest tree as an initramfs (Kata initrd mode).
	FullInitrd string
	// Disk is the dm-verity protected root disk.
	Disk string
	// KernelParams is the dm-mod.create= root fragment for Disk.
	KernelParams string
	Manifest     map[string]string
}

// Lock serialises test runs sharing build/e2e (several engineers, one tree).
// The returned file must stay open while the artefacts are in use.
func Lock(root string) (*os.File, error) {
	dir := filepath.Join(root, "build")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "e2e.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock build/e2e: %w", err)
	}
	return f, nil
}

// DevImageEnv builds the development image the VM tests boot: there is no
// TEE under TCG, and a confidential agent (the build's default) refuses to
// start without one. TestConfidentialWithoutInitdata adds the confidential
// image file back on top. The default policy stays the confidential
// image's, coco-default, so the VM tests exercise it.
var DevImageEnv = []string{"CONFIDENTIAL=0", "POLICY=coco-default"}

// ImageConfigFile is the agent's own configuration file in the guest tree
// (config.ImageFile), relative to the root.
const ImageConfigFile = "etc/cocoon/agent.toml"

// Build makes the agent, the guest image (rootfs/build.sh, exactly what
// make rootfs runs) and the test initrd. Kernels are cached in build/kernel.
func Build(ctx context.Context, root string) (Artifacts, error) {
	out := filepath.Join(root, "build", "e2e")
	a := Artifacts{Root: root, Dir: out}
	if err := run(ctx, root, nil, "make", "--no-print-directory", "bin/cocoon-agent", "bin/cocoonctl"); err != nil {
		return a, err
	}
	env := append([]string{"OUT=" + out, "KERNEL_CACHE=" + filepath.Join(root, "build", "kernel")}, DevImageEnv...)
	if err := run(ctx, root, env, "rootfs/build.sh"); err != nil {
		return a, err
	}
	probeDir := filepath.Join(out, "probe")
	if err := os.RemoveAll(probeDir); err != nil {
		return a, err
	}
	if err := run(ctx, root, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-ldflags=-s -w",
		"-o", filepath.Join(probeDir, "e2e", "guestprobe"), "./ci/e2e/guestprobe"); err != nil {
		return a, err
	}
	hook := "# VM test only: relay the host's user-mode network to the agent's vsock listeners.\n" +
		"/e2e/guestprobe -vsock-relays " + relayList() + " </dev/null >/dev/console 2>&1 &\n"
	if err := writeFile(filepath.Join(probeDir, "etc", "initrd.d", "50-guestprobe.sh"), hook); err != nil {
		return a, err
	}
	probeCpio := filepath.Join(out, "probe.cpio.gz")
	if err := run(ctx, probeDir, nil, "sh", "-c",
		"find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -n >"+probeCpio); err != nil {
		return a, err
	}
	// The kernel unpacks concatenated cpio archives in order, so the probe
	// lands on top of the unchanged stage-1 initrd.
	a.Initrd = filepath.Join(out, "test-initrd.img")
	if err := concat(a.Initrd, filepath.Join(out, "cocoon-boot-initrd.img"), probeCpio); err != nil {
		return a, err
	}
	a.Kernel = filepath.Join(out, "vmlinux")
	if _, err := os.Stat(a.Kernel); err != nil {
		a.Kernel = filepath.Join(out, "vmlinuz")
	}
	a.FullInitrd = filepath.Join(out, "cocoon-initrd.img")
	a.Disk = filepath.Join(out, "cocoon-rootfs.img")
	params, err := os.ReadFile(filepath.Join(out, "kernel-params.txt"))
	if err != nil {
		return a, err
	}
	a.KernelParams = strings.TrimSpace(string(params))
	manifest, err := os.ReadFile(filepath.Join(out, "manifest.txt"))
	if err != nil {
		return a, err
	}
	a.Manifest = map[string]string{}
	for _, line := range strings.Split(string(manifest), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			a.Manifest[k] = v
		}
	}
	return a, nil
}

// OverlayInitrd writes dst: base followed by a cpio archive of files (path
// relative to the root → content). The kernel unpacks concatenated archives
// in order, so these files replace the base's.
func OverlayInitrd(ctx context.Context, dst, base string, files map[string]string) error {
	dir, err := os.MkdirTemp(filepath.Dir(dst), "overlay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tree := filepath.Join(dir, "tree")
	for p, content := range files {
		if err := writeFile(filepath.Join(tree, p), content); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(tree, p), 0o644); err != nil {
			return err
		}
	}
	archive := filepath.Join(dir, "overlay.cpio.gz")
	if err := run(ctx, tree, nil, "sh", "-c",
		"find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -n >"+archive); err != nil {
		return err
	}
	return concat(dst, base, archive)
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, buf.String())
	}
	return nil
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o755)
}

func concat(dst string, srcs ...string) (err error) {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	for _, s := range srcs {
		in, err := os.Open(s)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// FindRoot walks up from the working directory to the module root.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}
