package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// guestDNS is the address the guest's resolver asks: QEMU forwards its TCP
// connections to the test's DNS server on the host's loopback.
const guestDNS = "10.0.2.100"

// emptyDirStorage is a disk-backed emptyDir as runtime-rs sends it with
// emptydir_mode = "block-encrypted" (Kata 4.1):
//   - driver "blk" and the disk's PCI path as source, fstype "ext4", no
//     options: src/runtime-rs/crates/resource/src/volume/utils.rs:123-175
//     handle_block_volume, called with fstype "ext4" and empty volume
//     options from block_emptydir_volume.rs:122-128;
//   - driver options "encryption_key=ephemeral" then "create_filesystem",
//     shared: block_emptydir_volume.rs:34-35 and 199-216
//     configure_block_emptydir_storage (discard only in block-plain mode);
//   - mount point /run/kata-containers/sandbox/storage/<base64url(source)>,
//     which the container's bind mount names as its source:
//     block_emptydir_volume.rs:146-150.
//
// The Go runtime sends the same driver options for a direct volume with
// encryptionKey metadata (src/runtime/virtcontainers/kata_agent.go:2034-2040
// handleDeviceBlockVolume; kata_agent_test.go:360-377).
func emptyDirStorage(d Disk) *agentpb.Storage {
	return &agentpb.Storage{
		Driver:        "blk",
		Source:        d.PCIPath(),
		Fstype:        "ext4",
		DriverOptions: []string{"encryption_key=ephemeral", "create_filesystem"},
		MountPoint:    "/run/kata-containers/sandbox/storage/" + base64.URLEncoding.EncodeToString([]byte(d.PCIPath())),
		Shared:        true,
	}
}

// TestPodEncryptedEmptyDirNamedRegistry boots a pod whose workload is pulled
// in the guest from a registry known only by a name that the test's own DNS
// server (on the host's loopback) resolves, through the dns lines of
// CreateSandbox, onto the pod's trusted_store; the workload writes into an
// encrypted emptyDir. Both disks are then read on the host: they must hold
// dm-integrity's layout and ciphertext, never the workload's data or the
// image's, a file system or a LUKS header.
func TestPodEncryptedEmptyDirNamedRegistry(t *testing.T) {
	a := artifacts(t)
	run := randomHex(t, 6)
	name := "registry-" + run + ".cocoon.test"
	dns, err := StartDNSServer(name, netip.MustParseAddr(guestGateway))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	reg := startTLSRegistry(t, name)
	reg.pushBusybox(t, "e2e/busybox")
	ref := reg.ref(name, "e2e/busybox")
	cdh := "[image]\nextra_root_certificates = [" + strconv.Quote(reg.CAPEM) + "]\n"
	img := initdataImage(t, filepath.Join(a.Root, "policy", "rego", "allow-all.rego"), map[string]string{"cdh.toml": cdh})

	emptyDir := newDisk(t, "emptydir.img", 0x1e, 64<<20)
	trusted := newDisk(t, "trusted_store.img", 0x1f, 128<<20)
	// Each guest connection to guestDNS:53 runs one relay to the server.
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox relays the guest's DNS connections: %v", err)
	}
	host, port, _ := net.SplitHostPort(dns.Addr)
	v := boot(t, VMConfig{
		Drives:   []string{img},
		Disks:    []Disk{emptyDir, trusted},
		GuestFwd: []GuestFwd{{Addr: guestDNS + ":53", Command: busybox + " nc " + host + " " + port}},
	})
	c := connect(t, v)
	sid := "e2e-pod-" + run
	marker := "cocoon-e2e-plaintext-" + randomHex(t, 16)

	t.Run("create-sandbox-with-dns", func(t *testing.T) {
		_, err := c.Agent.CreateSandbox(callCtx(t), &agentpb.CreateSandboxRequest{
			Hostname: "e2e-pod", SandboxId: sid,
			// kubelet's lines as the Go runtime forwards them, blank line
			// included (kata_agent.go:795-810 getDNS splits the file on "\n").
			Dns: []string{"nameserver " + guestDNS, "options use-vc", ""},
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("pause-container", func(t *testing.T) {
		meta := `image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"sandbox"}}`
		_, err := c.Agent.CreateContainer(callCtx(t), &agentpb.CreateContainerRequest{
			ContainerId: sid, ExecId: sid, OCI: pauseSpec(sid), SandboxPidns: true,
			Storages: []*agentpb.Storage{{
				Driver: "image_guest_pull", Source: "pause", DriverOptions: []string{meta},
				MountPoint: "/run/kata-containers/" + sid + "/rootfs",
			}},
		})
		if err != nil {
			t.Fatalf("CreateContainer: %v", err)
		}
		if _, err := c.Agent.StartContainer(callCtx(t), &agentpb.StartContainerRequest{ContainerId: sid}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
	})

	t.Run("workload-writes-encrypted-emptydir", func(t *testing.T) {
		const cid = "e2e-writer"
		rootfs := "/run/kata-containers/" + cid + "/rootfs"
		vol := emptyDirStorage(emptyDir)
		spec := pauseSpec(sid)
		// Write a few hundred KiB so the data must reach the disk's data
		// blocks, flush it, and read it back through the file system.
		script := `i=0; while [ $i -lt 8192 ]; do echo "$M"; i=$((i+1)); done >/data/marker && sync && head -n 1 /data/marker && wc -l </data/marker`
		spec.Process = &agentpb.Process{Args: []string{"/bin/sh", "-c", script}, Cwd: "/", User: &agentpb.User{},
			Env: []string{"PATH=/bin", "M=" + marker}}
		spec.Root = &agentpb.Root{Path: rootfs}
		spec.Annotations = map[string]string{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sid}
		spec.Linux.CgroupsPath = "/kubepods/e2e/" + cid
		// containerd's emptyDir bind, its source rewritten by the runtime
		// to the storage's mount point (utils.rs:181-188).
		spec.Mounts = append(spec.Mounts, &agentpb.Mount{Destination: "/data", Type: "bind", Source: vol.MountPoint,
			Options: []string{"rbind", "rprivate", "rw"}})
		// The pod's raw block volume at Kata's trusted_store path
		// (docs/how-to/how-to-pull-images-in-guest-with-kata.md): the
		// spec lists the host's numbers, the request the disk by PCI path
		// (kata_agent.go:1195-1210 appendBlockDevice); the agent encrypts
		// it and pulls the image onto it.
		spec.Linux.Devices = append(spec.Linux.Devices, &agentpb.LinuxDevice{Path: "/dev/trusted_store", Type: "b", Major: 259, Minor: 7, FileMode: 0o660})
		_, err := c.Agent.CreateContainer(callCtx(t), &agentpb.CreateContainerRequest{
			ContainerId: cid, ExecId: cid, OCI: spec,
			Devices: []*agentpb.Device{{Type: "blk", Id: trusted.PCIPath(), ContainerPath: "/dev/trusted_store"}},
			Storages: []*agentpb.Storage{{
				Driver: "image_guest_pull", Source: ref, MountPoint: rootfs,
				DriverOptions: []string{`image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"container"}}`},
			}, vol},
		})
		if err != nil {
			t.Fatalf("CreateContainer pulling %s with an encrypted emptyDir: %v", ref, err)
		}
		if dns.Answers() == 0 {
			t.Errorf("the guest pulled %s without asking the test's DNS server", ref)
		}
		if rec, ok := v.Console().Find("storage encrypted"); !ok || rec.Str("integrity") != "hmac-sha256" {
			t.Errorf("storage encrypted record %v (found %v), want integrity hmac-sha256", rec, ok)
		}
		if rec, ok := v.Console().Find("trusted store mounted"); !ok || rec.Str("integrity") != "hmac-sha256" {
			t.Errorf("trusted store record %v (found %v), want integrity hmac-sha256", rec, ok)
		}
		if _, err := c.Agent.StartContainer(callCtx(t), &agentpb.StartContainerRequest{ContainerId: cid}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		out := readAll(t, c.Agent, cid)
		w, err := c.Agent.WaitProcess(callCtx(t), &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: cid})
		if err != nil {
			t.Fatalf("WaitProcess: %v", err)
		}
		if want := marker + "\n8192\n"; w.Status != 0 || out != want {
			t.Fatalf("workload exited %d with output %q, want %q", w.Status, out, want)
		}
		// Removing the only user releases the emptyDir: unmount, close
		// the mapping, the key is gone.
		if _, err := c.Agent.RemoveContainer(callCtx(t), &agentpb.RemoveContainerRequest{ContainerId: cid}); err != nil {
			t.Errorf("RemoveContainer: %v", err)
		}
	})

	t.Run("destroy-sandbox-powers-off", func(t *testing.T) {
		req := &agentpb.SignalProcessRequest{ContainerId: sid, ExecId: sid, Signal: uint32(unix.SIGKILL)}
		if _, err := c.Agent.SignalProcess(callCtx(t), req); err != nil {
			t.Fatalf("SignalProcess: %v", err)
		}
		if _, err := c.Agent.WaitProcess(callCtx(t), &agentpb.WaitProcessRequest{ContainerId: sid, ExecId: sid}); err != nil {
			t.Fatalf("WaitProcess: %v", err)
		}
		if _, err := c.Agent.RemoveContainer(callCtx(t), &agentpb.RemoveContainerRequest{ContainerId: sid}); err != nil {
			t.Errorf("RemoveContainer: %v", err)
		}
		if _, err := c.Agent.DestroySandbox(callCtx(t), &agentpb.DestroySandboxRequest{}); err != nil {
			t.Fatal(err)
		}
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), poweroffBound)
		defer cancel()
		if err := v.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("host-sees-only-ciphertext", func(t *testing.T) {
		if !v.Exited() {
			t.Fatal("the VM still runs; its writes may not have reached the disk file")
		}
		checkCiphertextDisk(t, emptyDir.Path, marker)
		// The busybox layer was unpacked onto the trusted store: its
		// blocks are there, its text is not.
		checkCiphertextDisk(t, trusted.Path, "BusyBox v")
	})
}

// newDisk makes a sparse raw disk for the guest.
func newDisk(t *testing.T, name string, slot uint8, size int64) Disk {
	t.Helper()
	d := Disk{Path: filepath.Join(t.TempDir(), name), Slot: slot}
	if err := os.WriteFile(d.Path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(d.Path, size); err != nil {
		t.Fatal(err)
	}
	return d
}

// checkCiphertextDisk reads an encrypted emptyDir's disk file as the host
// sees it. The LUKS2 header is detached and stays in guest memory
// (docs/storage.md, "Encrypted block storage"), so the disk starts with
// dm-integrity's superblock (magic "integrt", Linux
// drivers/md/dm-integrity.c SB_MAGIC) and holds sectors of ciphertext with
// their tags.
func checkCiphertextDisk(t *testing.T, path, marker string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("integrt\x00")) {
		t.Errorf("disk starts with %q, want dm-integrity's superblock", data[:min(16, len(data))])
	}
	// The guest really wrote its file system here: count written blocks.
	written := 0
	for off := 4096; off+4096 <= len(data); off += 4096 {
		if bytes.ContainsFunc(data[off:off+4096], func(r rune) bool { return r != 0 }) {
			written++
		}
	}
	if written < 64 {
		t.Errorf("only %d written 4 KiB blocks after the superblock; the workload's data did not reach this disk", written)
	}
	for what, s := range map[string]string{
		"the workload's data":                     marker,
		"a plaintext directory (ext4 lost+found)": "lost+found",
		"a LUKS header (primary magic)":           "LUKS\xba\xbe",
		"a LUKS header (secondary magic)":         "SKUL\xba\xbe",
	} {
		if i := bytes.Index(data, []byte(s)); i >= 0 {
			t.Errorf("the host reads %s at offset %d", what, i)
		}
	}
	// libblkid knows ext4, LUKS and every common signature: the only
	// one it may find is dm-integrity's.
	out, err := exec.Command("blkid", "-p", "-o", "export", path).CombinedOutput()
	var types []string
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "TYPE="); ok {
			types = append(types, v)
		}
	}
	if err != nil || len(types) != 1 || types[0] != "DM_integrity" {
		t.Errorf("blkid -p on the disk: %v, types %q, want only DM_integrity\n%s", err, types, out)
	}
}

// readAll reads a process's stdout until EOF (empty data) or the process
// is gone.
func readAll(t *testing.T, a testagent.StreamReader, cid string) string {
	t.Helper()
	out, _ := testagent.ReadStream(callCtx(t), a, cid, cid, false)
	return string(out)
}

// randomHex names what one test run creates, so runs never meet.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(hex.EncodeToString(b))
}
