package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/layer"
)

// blobPattern fills the data file of the test image's top layer: easy to
// find in the layer image, so one byte of it can be flipped.
var blobPattern = bytes.Repeat([]byte("cocoon-verified-layer-data-block"), 128) // 4 KiB

// builtLayers builds a busybox image with a data layer on top into EROFS
// layer images with cocoonctl's builder (tools/layer), lowest first.
func builtLayers(t *testing.T) []*layer.Result {
	t.Helper()
	ref := testregistry.Build(t, t.TempDir(), []string{"/bin/sh"},
		func(t testing.TB, rootfs string) { testenv.BusyboxRootfs(t, rootfs) },
		testregistry.Files(map[string]string{"data/blob": string(bytes.Repeat(blobPattern, 64))}),
	)
	m, err := layer.LookupMkfs(context.Background(), "")
	if err != nil {
		t.Fatalf("%v (ci/install-deps.sh installs one)", err)
	}
	res, err := layer.BuildImage(context.Background(), m, ref, t.TempDir(), layer.ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// gptDisk writes the layer images into one GPT disk, one partition each, as
// runtime-rs merges them (gpt_disk.rs): the topmost layer is partition 1,
// the order Kata's agent stacks them in. It returns the partition number
// of each layer (lowest layer first) and each partition's byte offset.
func gptDisk(t *testing.T, path string, layers []*layer.Result) (parts []int, offsets []int64) {
	t.Helper()
	const align = 1 << 20
	var script strings.Builder
	script.WriteString("label: gpt\n")
	off := int64(align)
	parts = make([]int, len(layers))
	offsets = make([]int64, len(layers))
	for i := len(layers) - 1; i >= 0; i-- { // top layer first: partition 1
		st, err := os.Stat(layers[i].Image)
		if err != nil {
			t.Fatal(err)
		}
		size := (st.Size() + align - 1) / align * align
		parts[i] = len(layers) - i
		offsets[i] = off
		fmt.Fprintf(&script, "start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", off/512, size/512)
		off += size
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(off + align); err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		data, err := os.ReadFile(l.Image)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(data, offsets[i]); err != nil {
			t.Fatal(err)
		}
	}
	sf := exec.Command("sfdisk", "--quiet", path)
	sf.Stdin = strings.NewReader(script.String())
	if out, err := sf.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return parts, offsets
}

// layerStorages are the storages runtime-rs sends for the disk's layers.
func layerStorages(d Disk, cid string, layers []*layer.Result, parts []int) []*agentpb.Storage {
	var out []*agentpb.Storage
	for i := len(layers) - 1; i >= 0; i-- {
		out = append(out, &agentpb.Storage{
			Driver: "blk", Source: d.PCIPath(), Fstype: "erofs",
			MountPoint: "/run/kata-containers/shared/containers/" + cid + "/rootfs",
			Options:    layers[i].Options(parts[i]),
		})
	}
	return out
}

// pinningPolicy is allow-all with docs/layers.md's root-hash pin in place
// of the CreateContainer rule, pinning hashes.
func pinningPolicy(t *testing.T, root string, hashes []string) string {
	t.Helper()
	snippet, err := os.ReadFile(filepath.Join(root, "agent/storage/erofs/testdata/pin-root-hashes.rego"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := os.ReadFile(filepath.Join(root, "policy/rego/allow-all.rego"))
	if err != nil {
		t.Fatal(err)
	}
	var pins []string
	for _, h := range hashes {
		pins = append(pins, strconv.Quote(h)+",")
	}
	text := strings.Replace(string(snippet), `"ea1997fa68592d39cbe85d237d78652fed1cfe7dcb6780dfafa6e0d69ee83658",`, strings.Join(pins, "\n\t"), 1)
	var rules []string
	for _, l := range strings.Split(string(all), "\n") {
		if strings.HasPrefix(l, "default ") && !strings.HasPrefix(l, "default CreateContainerRequest ") {
			rules = append(rules, l)
		}
	}
	p := filepath.Join(t.TempDir(), "policy.rego")
	if err := os.WriteFile(p, []byte("package agent_policy\n\n"+text+"\n"+strings.Join(rules, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPodFromVerifiedLayers runs containers from host-shared EROFS layers
// on a GPT disk as runtime-rs attaches them, with their root hashes pinned
// by the pod's policy: the intact disk runs, a copy with one flipped data
// byte gives the reader EIO and the agent logs the corruption, and a
// layer whose root hash is not pinned is refused before any mount.
func TestPodFromVerifiedLayers(t *testing.T) {
	a := artifacts(t)
	layers := builtLayers(t)
	var hashes []string
	for _, l := range layers {
		hashes = append(hashes, l.Verity.RootHashHex())
	}
	good := Disk{Path: filepath.Join(t.TempDir(), "layers.img"), Slot: 0x1c}
	parts, offsets := gptDisk(t, good.Path, layers)
	// The tampered copy: one byte of the data file in the top layer.
	bad := Disk{Path: filepath.Join(t.TempDir(), "tampered.img"), Slot: 0x1d}
	data, err := os.ReadFile(good.Path)
	if err != nil {
		t.Fatal(err)
	}
	top := len(layers) - 1
	at := bytes.Index(data[offsets[top]:], blobPattern)
	if at < 0 {
		t.Fatal("the data file is not in the top layer's image")
	}
	flip := offsets[top] + int64(at) + 3*4096 + 17 // inside the fourth block of the file
	data[flip] ^= 0x01
	if err := os.WriteFile(bad.Path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	img := initdataImage(t, pinningPolicy(t, a.Root, hashes), nil)
	v := boot(t, VMConfig{Drives: []string{img}, Disks: []Disk{good, bad}})
	c := connect(t, v)
	sid := "e2e-layers-" + randomHex(t, 4)
	if _, err := c.Agent.CreateSandbox(callCtx(t), &agentpb.CreateSandboxRequest{Hostname: "e2e-pod", SandboxId: sid}); err != nil {
		t.Fatal(err)
	}
	spec := func(cid, script string) *agentpb.Spec {
		s := pauseSpec(sid)
		s.Process = &agentpb.Process{Args: []string{"/bin/sh", "-c", script}, Cwd: "/", User: &agentpb.User{}, Env: []string{"PATH=/bin"}}
		s.Root = &agentpb.Root{Path: "/run/kata-containers/shared/containers/" + cid + "/rootfs"}
		s.Annotations = map[string]string{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sid}
		s.Linux.CgroupsPath = "/kubepods/e2e/" + cid
		return s
	}
	run := func(t *testing.T, cid string, d Disk, script string) string {
		t.Helper()
		_, err := c.Agent.CreateContainer(callCtx(t), &agentpb.CreateContainerRequest{
			ContainerId: cid, ExecId: cid, OCI: spec(cid, script), Storages: layerStorages(d, cid, layers, parts)})
		if err != nil {
			t.Fatalf("CreateContainer from %s: %v", d.Path, err)
		}
		if _, err := c.Agent.StartContainer(callCtx(t), &agentpb.StartContainerRequest{ContainerId: cid}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		out := readAll(t, c.Agent, cid)
		if _, err := c.Agent.WaitProcess(callCtx(t), &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: cid}); err != nil {
			t.Fatalf("WaitProcess: %v", err)
		}
		if _, err := c.Agent.RemoveContainer(callCtx(t), &agentpb.RemoveContainerRequest{ContainerId: cid}); err != nil {
			t.Errorf("RemoveContainer: %v", err)
		}
		return out
	}

	t.Run("intact-layers-run", func(t *testing.T) {
		out := run(t, "e2e-intact", good, `wc -c </data/blob && echo written >/data/new && cat /data/new`)
		if want := fmt.Sprintf("%d\nwritten\n", 64*len(blobPattern)); out != want {
			t.Fatalf("output %q, want %q", out, want)
		}
		if rec, ok := v.Console().Find("erofs layers mounted"); !ok || rec.Str("root_hashes") == "" {
			t.Errorf("no erofs layers mounted record: %v", rec)
		}
	})

	t.Run("tampered-block-is-an-io-error", func(t *testing.T) {
		out := run(t, "e2e-tampered", bad, `cat /data/blob >/dev/null 2>/tmp/err; echo rc=$?; cat /tmp/err`)
		if !strings.HasPrefix(out, "rc=1\n") || !strings.Contains(out, "Input/output error") {
			t.Fatalf("reading the tampered file: %q, want rc=1 and an I/O error", out)
		}
		rec, ok := v.Console().Find("dm-verity detected corruption")
		if !ok || rec.Str("root_hash") != hashes[top] {
			t.Fatalf("corruption record %v (found %v), want the top layer's root hash %s", rec, ok, hashes[top])
		}
	})

	t.Run("unpinned-root-hash-refused", func(t *testing.T) {
		const cid = "e2e-unpinned"
		storages := layerStorages(good, cid, layers, parts)
		other := strings.Repeat("0f", 32)
		for i, o := range storages[0].Options {
			if strings.HasPrefix(o, "X-kata.dmverity.roothash=") {
				storages[0].Options[i] = "X-kata.dmverity.roothash=" + other
			}
		}
		_, err := c.Agent.CreateContainer(callCtx(t), &agentpb.CreateContainerRequest{
			ContainerId: cid, ExecId: cid, OCI: spec(cid, "true"), Storages: storages})
		st, _ := status.FromError(err)
		if st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "dm-verity root hash "+other+" is not allowed by policy") {
			t.Fatalf("CreateContainer with an unpinned layer: %v", err)
		}
		for _, l := range v.Console().Grep("erofs layers mounted") {
			if strings.Contains(l, cid) {
				t.Fatalf("the refused container's layers were mounted: %s", l)
			}
		}
	})
}
