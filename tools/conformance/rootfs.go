package conformance

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// rootfsBuilder writes busybox-static root file systems.
type rootfsBuilder struct {
	busybox string
	applets []string
}

// newRootfsBuilder copies busybox to private, a file the root file systems
// hard-link: a container writing to its /bin/busybox must not reach the
// host's binary.
func newRootfsBuilder(busybox, private string) (*rootfsBuilder, error) {
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox-static is needed for container root file systems (%s --list): %w", busybox, err)
	}
	if err := os.MkdirAll(filepath.Dir(private), 0o755); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	if err := copyFile(busybox, private); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	return &rootfsBuilder{busybox: private, applets: strings.Fields(string(out))}, nil
}

// build fills dir with busybox, one symlink per applet and the few files a
// container expects. busybox is hard-linked when it can be (the same file
// system), which makes a root file system cost a directory of symlinks.
func (b *rootfsBuilder) build(dir string) error {
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	bin := filepath.Join(dir, "bin", "busybox")
	if err := os.Link(b.busybox, bin); err != nil {
		if err := copyFile(b.busybox, bin); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	for _, a := range b.applets {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil && !os.IsExist(err) {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
		"etc/hosts":  "127.0.0.1 localhost\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
