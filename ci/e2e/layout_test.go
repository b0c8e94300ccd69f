package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestImageLayout checks what rootfs/build.sh promises about the guest tree
// and its outputs, without booting.
func TestImageLayout(t *testing.T) {
	a := artifacts(t)
	tree := filepath.Join(a.Dir, "rootfs")

	t.Run("agent-as-init", func(t *testing.T) {
		agent, err := os.ReadFile(filepath.Join(a.Root, "bin", "cocoon-agent"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"usr/bin/kata-agent", "sbin/init", "init", "usr/bin/cocoon-agent"} {
			got, err := os.ReadFile(filepath.Join(tree, p))
			if err != nil || string(got) != string(agent) {
				t.Errorf("/%s is not the agent binary (err %v)", p, err)
			}
		}
		unit, err := os.ReadFile(filepath.Join(tree, "etc/systemd/system/kata-agent.service"))
		if err != nil || !strings.Contains(string(unit), "ExecStart=/usr/bin/kata-agent") {
			t.Errorf("kata-agent.service missing or wrong (err %v)", err)
		}
	})

	// The image's own configuration decides confidential mode; the VM
	// tests' image is the development one (DevImageEnv).
	t.Run("agent-config", func(t *testing.T) {
		got, err := os.ReadFile(filepath.Join(tree, ImageConfigFile))
		if err != nil || !regexp.MustCompile(`(?m)^confidential = false$`).Match(got) {
			t.Errorf("/%s = %q (err %v), want confidential = false", ImageConfigFile, got, err)
		}
		if a.Manifest["confidential"] != "false" {
			t.Errorf("manifest confidential = %q", a.Manifest["confidential"])
		}
	})

	t.Run("policies", func(t *testing.T) {
		target, err := os.Readlink(filepath.Join(tree, "etc/kata-opa/default-policy.rego"))
		if err != nil || target != "coco-default.rego" {
			t.Errorf("default policy -> %q (err %v), want coco-default.rego", target, err)
		}
		shipped, _ := filepath.Glob(filepath.Join(a.Root, "policy/rego/*.rego"))
		for _, p := range shipped {
			if _, err := os.Stat(filepath.Join(tree, "etc/kata-opa", filepath.Base(p))); err != nil {
				t.Errorf("policy %s not installed", filepath.Base(p))
			}
		}
		if _, err := os.Stat(filepath.Join(tree, "etc/kata-opa/stateful.rego")); err == nil {
			t.Error("policy test data shipped in the image")
		}
	})

	t.Run("pause-bundle", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(tree, "pause_bundle/config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var spec struct {
			Process struct{ Args []string } `json:"process"`
			Root    struct{ Path string }   `json:"root"`
		}
		if err := json.Unmarshal(raw, &spec); err != nil {
			t.Fatal(err)
		}
		if len(spec.Process.Args) == 0 || spec.Root.Path != "rootfs" {
			t.Fatalf("pause config %+v", spec)
		}
		fi, err := os.Stat(filepath.Join(tree, "pause_bundle/rootfs", spec.Process.Args[0]))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("pause binary %s missing or not executable (err %v)", spec.Process.Args[0], err)
		}
	})

	t.Run("certificates-and-modules", func(t *testing.T) {
		ca, err := os.ReadFile(filepath.Join(tree, "etc/ssl/certs/ca-certificates.crt"))
		if err != nil || strings.Count(string(ca), "BEGIN CERTIFICATE") < 50 {
			t.Errorf("CA bundle missing or short (err %v)", err)
		}
		dep, err := os.ReadFile(filepath.Join(tree, "lib/modules", a.Manifest["kernel_version"], "modules.dep"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"vsock.ko", "vmw_vsock_virtio_transport.ko", "vsock_loopback.ko", "dm-verity.ko", "erofs.ko", "overlay.ko", "virtio_blk.ko", "dm-crypt.ko", "dm-integrity.ko", "xts.ko", "ecb.ko", "authenc.ko"} {
			if !strings.Contains(string(dep), "/"+m+":") {
				t.Errorf("module %s not in modules.dep", m)
			}
		}
	})

	// Encrypted emptyDirs run cryptsetup and mkfs.ext4 in the guest; each
	// must find its loader and libraries in the tree, and be found by
	// name with the PATH the stage-1 initrd hands the agent (/bin:/sbin,
	// rootfs/boot/init), which the agent keeps.
	t.Run("crypt-tools", func(t *testing.T) {
		for b, version := range map[string]string{"cryptsetup": "--version", "mkfs.ext4": "-V"} {
			cmd := exec.Command("chroot", tree, b, version)
			cmd.Env = []string{"PATH=/bin:/sbin"}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%s %s in the guest tree with PATH=/bin:/sbin: %v\n%s", b, version, err, out)
			}
		}
	})

	// The agent binds the pod's DNS lines over /etc/resolv.conf
	// (agent/internal/sandbox/dns.go); the verity root is read-only, so the bind
	// target must ship in the image, empty until a pod gives it content.
	t.Run("resolv-conf", func(t *testing.T) {
		fi, err := os.Lstat(filepath.Join(tree, "etc/resolv.conf"))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 || fi.Size() != 0 {
			t.Errorf("/etc/resolv.conf is %v, %d bytes; want an empty regular file, mode 0644", fi.Mode(), fi.Size())
		}
	})

	t.Run("verity-parameters", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(a.Dir, "root_hash.txt"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`^root_hash=([0-9a-f]{64}),salt=([0-9a-f]{64}),data_blocks=(\d+),data_block_size=4096,hash_block_size=4096\n$`).FindStringSubmatch(string(raw))
		if m == nil {
			t.Fatalf("root_hash.txt = %q", raw)
		}
		var blocks int64
		fmt.Sscan(m[3], &blocks)
		want := fmt.Sprintf(`dm-mod.create="dm-verity,,,ro,0 %d verity 1 /dev/vda1 /dev/vda2 4096 4096 %d 0 sha256 %s %s"`, blocks*8, blocks, m[1], m[2])
		if !strings.HasPrefix(a.KernelParams, want) {
			t.Errorf("kernel params %q\nwant prefix %q", a.KernelParams, want)
		}
		conf, err := os.ReadFile(filepath.Join(a.Dir, "configuration-cocoon.toml"))
		if err != nil || !strings.Contains(string(conf), `kernel_verity_params = "`+strings.TrimSpace(string(raw))+`"`) {
			t.Errorf("Kata fragment does not carry the verity parameters (err %v)", err)
		}
		// A drop-in's kernel_params replaces Kata's, so the fragment must
		// repeat Kata 4.1's defaults (src/runtime/arch/amd64-options.mk:9-10,
		// src/runtime-rs/arch/x86_64-options.mk:8-9) or the guest runs cgroup v1.
		params := regexp.MustCompile(`(?m)^kernel_params = "([^"]*)"$`).FindAllStringSubmatch(string(conf), -1)
		if len(params) != 1 {
			t.Fatalf("want one kernel_params line in the fragment, got %q", params)
		}
		got := " " + params[0][1] + " "
		for _, p := range []string{"cgroup_no_v1=all", "systemd.unified_cgroup_hierarchy=1", "agent.log=info"} {
			if !strings.Contains(got, " "+p+" ") {
				t.Errorf("kernel_params %q lacks %s", params[0][1], p)
			}
		}
		// Partition 1 holds exactly the verified blocks, partition 2 the hash tree.
		out, err := exec.Command("sfdisk", "--dump", a.Disk).Output()
		if err != nil {
			t.Fatalf("sfdisk: %v", err)
		}
		parts := regexp.MustCompile(`start=\s*(\d+), size=\s*(\d+)`).FindAllStringSubmatch(string(out), -1)
		if len(parts) != 2 {
			t.Fatalf("want 2 partitions, got:\n%s", out)
		}
		var size1 int64
		fmt.Sscan(parts[0][2], &size1)
		if parts[0][1] != "2048" || size1 < blocks*8 {
			t.Errorf("partition 1 %v cannot hold %d verified sectors", parts[0], blocks*8)
		}
	})
}

// TestReproducibleImage rebuilds the image from the same agent binary in
// another directory: the root hash a verifier pins must not depend on when
// or where the image was built.
func TestReproducibleImage(t *testing.T) {
	a := artifacts(t)
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(a.Root, "rootfs", "build.sh"))
	cmd.Env = append(os.Environ(), "OUT="+out, "KERNEL_CACHE="+filepath.Join(a.Root, "build", "kernel"),
		"AGENT="+filepath.Join(a.Dir, "rootfs", "usr", "bin", "kata-agent"))
	cmd.Env = append(cmd.Env, DevImageEnv...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second build: %v\n%s", err, b)
	}
	for _, f := range []string{"root_hash.txt", "kernel-params.txt", "cocoon-initrd.img", "cocoon-rootfs.img"} {
		first, err1 := os.ReadFile(filepath.Join(a.Dir, f))
		second, err2 := os.ReadFile(filepath.Join(out, f))
		if err1 != nil || err2 != nil || string(first) != string(second) {
			t.Errorf("%s differs between two builds of the same inputs (%v, %v)", f, err1, err2)
		}
	}
}
