package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// blobBlocks is the data file's size in blocks: enough that 128 of its
// blocks (those one hash-tree block covers) hold nothing else.
const blobBlocks = 512

// lateLine fills data/late, the file read only after the disk is gone.
const lateLine = "late-line"

// builtLayers builds a busybox image with a data layer on top into EROFS
// layer images with cocoonctl's builder (tools/layer), lowest first.
func builtLayers(t *testing.T) []*layer.Result {
	t.Helper()
	ref := testregistry.Build(t, t.TempDir(), []string{"/bin/sh"},
		func(t testing.TB, rootfs string) { testenv.BusyboxRootfs(t, rootfs) },
		testregistry.Files(map[string]string{
			"data/blob": string(bytes.Repeat(blobPattern, blobBlocks)),
			"data/late": strings.Repeat(lateLine+"\n", 1024),
		}),
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

// plantedUpper is a writable layer disk as a hostile host could attach
// it: an ext4 whose overlay upper directory (Kata's layout: upper/upper,
// multi_layer_erofs.rs:422-427) holds a data/late of its own.
func plantedUpper(t *testing.T, slot uint8) Disk {
	t.Helper()
	tree := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tree, "upper", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "upper", "data", "late"), []byte("planted-by-the-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tree, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := Disk{Path: filepath.Join(t.TempDir(), "rwlayer.img"), Slot: slot}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", tree, d.Path, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return d
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

// hashEntry returns where, in a layer image, the level-0 hash-tree entry
// of data block k lies: the tree starts one block past the hash offset
// (the superblock), top level first, each level as many blocks as
// dm-verity computes in verity_ctr (drivers/md/dm-verity-target.c: levels
// while (data_blocks-1) >> (7*levels) is not zero; level i has
// ceil(data_blocks / 128^(i+1)) blocks; 128 sha256 entries a 4 KiB
// block). It also returns level 0's first block on the device.
func hashEntry(v *layer.Verity, k uint64) (off int64, level0 uint64) {
	const bits = 7 // log2(4096 / 32)
	levels := 0
	for bits*levels < 64 && (v.DataBlocks-1)>>(bits*levels) != 0 {
		levels++
	}
	level0 = v.HashOffset/4096 + 1
	for i := levels - 1; i >= 1; i-- {
		level0 += (v.DataBlocks + 1<<((i+1)*bits) - 1) >> ((i + 1) * bits)
	}
	return int64(level0*4096 + k*32), level0
}

// TestPodFromVerifiedLayers runs containers from host-shared EROFS layers
// on a GPT disk as runtime-rs attaches them, with their root hashes pinned
// by the pod's policy: the intact disk runs; a copy with one flipped data
// byte, and one with a flipped byte in the hash tree, give the reader EIO
// and the agent reports the corruption while the container still runs,
// naming the layer's root hash and the block; a disk unplugged under a
// running container is reported and its reads fail; a layer whose root
// hash is not pinned is refused before any mount.
func TestPodFromVerifiedLayers(t *testing.T) {
	a := artifacts(t)
	layers := builtLayers(t)
	var hashes []string
	for _, l := range layers {
		hashes = append(hashes, l.Verity.RootHashHex())
	}
	good := Disk{Path: filepath.Join(t.TempDir(), "layers.img"), Slot: 0x1c}
	parts, offsets := gptDisk(t, good.Path, layers)
	data, err := os.ReadFile(good.Path)
	if err != nil {
		t.Fatal(err)
	}
	top := len(layers) - 1
	at := int64(bytes.Index(data[offsets[top]:], blobPattern))
	if at < 0 || at%4096 != 0 {
		t.Fatalf("the data file is not block-aligned in the top layer's image (at %d)", at)
	}
	first := uint64(at / 4096) // the data file's first block in the layer
	copyWith := func(name string, slot uint8, flip int64) Disk {
		d := Disk{Path: filepath.Join(t.TempDir(), name), Slot: slot}
		b := bytes.Clone(data)
		if flip >= 0 {
			b[flip] ^= 0x01
		}
		if err := os.WriteFile(d.Path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// One byte of the data file's fourth block.
	badBlock := first + 3
	bad := copyWith("tampered.img", 0x1d, offsets[top]+int64(badBlock)*4096+17)
	// One byte of the level-0 hash block that covers 128 blocks of the data
	// file and nothing else, so the mount still reads the layer's metadata.
	group := (first + 127) / 128
	entry, level0 := hashEntry(layers[top].Verity, group*128+5)
	badHashBlock := level0 + group
	badTree := copyWith("tampered-tree.img", 0x1e, offsets[top]+entry+3)
	gone := copyWith("unplugged.img", 0x1f, -1)
	rw := plantedUpper(t, 0x1b)

	img := initdataImage(t, pinningPolicy(t, a.Root, hashes), nil)
	// The reports are read where runtime-rs reads them: the log port.
	v := boot(t, VMConfig{Drives: []string{img}, Disks: []Disk{good, bad, badTree, gone, rw}, Monitor: true,
		VsockRelays: []uint32{logVport}, Extra: []string{"agent.log_vport=1025"}})
	c := connect(t, v)
	logs := openLogPort(t, v)
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
	start := func(t *testing.T, cid string, storages []*agentpb.Storage, script string) {
		t.Helper()
		_, err := c.Agent.CreateContainer(callCtx(t), &agentpb.CreateContainerRequest{
			ContainerId: cid, ExecId: cid, OCI: spec(cid, script), Storages: storages})
		if err != nil {
			t.Fatalf("CreateContainer %s: %v", cid, err)
		}
		if _, err := c.Agent.StartContainer(callCtx(t), &agentpb.StartContainerRequest{ContainerId: cid}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
	}
	// finish waits for the container's exit, runs check while it still
	// exists (its layers mounted), then removes it.
	finish := func(t *testing.T, cid string, check func()) {
		t.Helper()
		if _, err := c.Agent.WaitProcess(callCtx(t), &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: cid}); err != nil {
			t.Fatalf("WaitProcess: %v", err)
		}
		if check != nil {
			check()
		}
		if _, err := c.Agent.RemoveContainer(callCtx(t), &agentpb.RemoveContainerRequest{ContainerId: cid}); err != nil {
			t.Errorf("RemoveContainer: %v", err)
		}
	}
	run := func(t *testing.T, cid string, d Disk, script string, check func()) string {
		t.Helper()
		start(t, cid, layerStorages(d, cid, layers, parts), script)
		out := readAll(t, c.Agent, cid)
		finish(t, cid, check)
		return out
	}
	// corruption waits for the report of a corrupted block of the top
	// layer of container cid.
	corruption := func(t *testing.T, cid, kind string, block uint64) {
		t.Helper()
		_, rec := logs.waitFor(t, "the corruption report of "+cid, func(_ KataLine, r AgentRecord) bool {
			return r.Msg() == "dm-verity detected corruption" && strings.Contains(r.Str("layer"), "container "+cid+" ")
		})
		if rec.Str("root_hash") != hashes[top] || rec.Str("block_type") != kind || rec["block"] != float64(block) ||
			!strings.HasPrefix(rec.Str("dev"), "/dev/dm-") || !strings.HasPrefix(rec.Str("device"), "cocoon-verity-") ||
			!strings.Contains(rec.Str("error"), fmt.Sprintf("%s block %d of erofs layer", kind, block)) || !strings.Contains(rec.Str("error"), hashes[top]) {
			t.Fatalf("corruption record %v, want the top layer's root hash %s and %s block %d", rec, hashes[top], kind, block)
		}
	}

	t.Run("intact-layers-run", func(t *testing.T) {
		out := run(t, "e2e-intact", good, `wc -c </data/blob && read -r l </data/late && echo $l && echo written >/data/new && cat /data/new`, nil)
		if want := fmt.Sprintf("%d\n%s\nwritten\n", blobBlocks*len(blobPattern), lateLine); out != want {
			t.Fatalf("output %q, want %q", out, want)
		}
		if rec, ok := v.Console().Find("erofs layers mounted"); !ok || rec.Str("root_hashes") == "" {
			t.Errorf("no erofs layers mounted record: %v", rec)
		}
		for _, r := range v.Console().Agent {
			if r.Msg() == "dm-verity detected corruption" {
				t.Fatalf("corruption reported for intact layers: %v", r)
			}
		}
	})

	// incidents reads the verified-layer incident counters from GetMetrics.
	incidents := func(t *testing.T) (corruptions, removed int) {
		t.Helper()
		m, err := c.Agent.GetMetrics(callCtx(t), &agentpb.GetMetricsRequest{})
		if err != nil {
			t.Fatalf("GetMetrics: %v", err)
		}
		found := 0
		for _, l := range strings.Split(m.GetMetrics(), "\n") {
			name, val, _ := strings.Cut(l, " ")
			n, err := strconv.Atoi(val)
			switch {
			case name == "cocoon_agent_dm_verity_corruptions_total" && err == nil:
				corruptions, found = n, found+1
			case name == "cocoon_agent_layer_devices_removed_total" && err == nil:
				removed, found = n, found+1
			}
		}
		if found != 2 {
			t.Fatalf("GetMetrics lacks the verified-layer incident counters:\n%s", m.GetMetrics())
		}
		return corruptions, removed
	}

	// The report comes when the read fails, before RemoveContainer; it
	// counts one corrupted layer in GetMetrics.
	t.Run("tampered-block-is-an-io-error", func(t *testing.T) {
		const cid = "e2e-tampered"
		before, _ := incidents(t)
		out := run(t, cid, bad, `cat /data/blob >/dev/null 2>/tmp/err; echo rc=$?; cat /tmp/err`,
			func() { corruption(t, cid, "data", badBlock) })
		if !strings.HasPrefix(out, "rc=1\n") || !strings.Contains(out, "Input/output error") {
			t.Fatalf("reading the tampered file: %q, want rc=1 and an I/O error", out)
		}
		if after, _ := incidents(t); after != before+1 {
			t.Fatalf("cocoon_agent_dm_verity_corruptions_total went from %d to %d, want one more", before, after)
		}
	})

	t.Run("tampered-hash-tree-is-an-io-error", func(t *testing.T) {
		const cid = "e2e-tampered-tree"
		out := run(t, cid, badTree, `cat /data/blob >/dev/null 2>/tmp/err; echo rc=$?; cat /tmp/err`,
			func() { corruption(t, cid, "hash", badHashBlock) })
		if !strings.HasPrefix(out, "rc=1\n") || !strings.Contains(out, "Input/output error") {
			t.Fatalf("reading a file under a tampered hash block: %q, want rc=1 and an I/O error", out)
		}
	})

	// The host removes the disk under a running container: the agent says
	// which layers lost their device, and reads not yet cached fail. Only
	// shell builtins run after the unplug, so nothing else needs the disk.
	t.Run("unplugged-disk-is-reported", func(t *testing.T) {
		const cid = "e2e-unplugged"
		_, before := incidents(t)
		start(t, cid, layerStorages(gone, cid, layers, parts), `echo ready; read x; read -r l </data/late; echo rc=$? l=$l`)
		r, err := c.Agent.ReadStdout(callCtx(t), &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: cid, Len: 32 << 10})
		if err != nil || string(r.GetData()) != "ready\n" {
			t.Fatalf("first output %q, %v", r.GetData(), err)
		}
		if err := v.Unplug(callCtx(t), 3); err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			_, rec := logs.waitFor(t, fmt.Sprintf("the removal report of %s partition %d", cid, p), func(_ KataLine, r AgentRecord) bool {
				return r.Msg() == "erofs layer device removed while mounted: reads of this layer now fail with EIO" &&
					strings.Contains(r.Str("layer"), "container "+cid+" ") && strings.HasSuffix(r.Str("layer"), fmt.Sprintf(" partition %d)", p))
			})
			if !slices.Contains(hashes, rec.Str("root_hash")) || !strings.HasPrefix(rec.Str("device"), "/dev/") {
				t.Fatalf("removal record %v", rec)
			}
		}
		if _, err := c.Agent.WriteStdin(callCtx(t), &agentpb.WriteStreamRequest{ContainerId: cid, ExecId: cid, Data: []byte("go\n")}); err != nil {
			t.Fatalf("WriteStdin: %v", err)
		}
		out := readAll(t, c.Agent, cid)
		if strings.Contains(out, "rc=0") || strings.Contains(out, lateLine) {
			t.Fatalf("reading a file of the unplugged disk: %q, want a failure", out)
		}
		finish(t, cid, nil)
		if _, after := incidents(t); after != before+len(parts) {
			t.Fatalf("cocoon_agent_layer_devices_removed_total went from %d to %d, want %d more (one per layer)", before, after, len(parts))
		}
	})

	// The host's writable layer disk, sent first as runtime-rs does
	// (erofs_rootfs.rs:1018-1020): the guest formats it encrypted, so the
	// file the host planted there does not override the verified layer's,
	// and what the container writes reaches the disk only as ciphertext.
	// containerd's mkdir directives for that disk ride on the first EROFS
	// layer's storage, as runtime-rs forwards them (containerd v2.3.0
	// plugins/snapshots/erofs/erofs.go:408-411; erofs_rootfs.rs:975-984).
	t.Run("ext4-upper-disk", func(t *testing.T) {
		const cid = "e2e-upper"
		marker := "cocoon-upper-marker-" + randomHex(t, 8)
		storages := append([]*agentpb.Storage{{
			Driver: "blk", Source: rw.PCIPath(), Fstype: "ext4",
			MountPoint: "/run/kata-containers/shared/containers/" + cid + "/rootfs",
			Options:    []string{"rw", "X-kata.overlay-upper", "X-kata.multi-layer=true"},
		}}, layerStorages(good, cid, layers, parts)...)
		storages[1].Options = append(storages[1].Options,
			"X-kata.mkdir.path={{ mount 0 }}/upper:0755", "X-kata.mkdir.path={{ mount 0 }}/work:0755")
		start(t, cid, storages, `read -r l </data/late && echo $l && i=0 && while [ $i -lt 4096 ]; do echo `+marker+`; i=$((i+1)); done >/data/written && wc -l </data/written`)
		out := readAll(t, c.Agent, cid)
		finish(t, cid, func() {
			_, rec := logs.waitFor(t, "the layers of "+cid, func(_ KataLine, r AgentRecord) bool {
				return r.Msg() == "erofs layers mounted" && r.Str("container") == cid
			})
			if !strings.HasPrefix(rec.Str("upper"), "/dev/vd") || rec["mkdirs"] != float64(2) {
				t.Errorf("upper %q with %v mkdir directives applied, want the disk and 2", rec.Str("upper"), rec["mkdirs"])
			}
		})
		if want := lateLine + "\n4096\n"; out != want {
			t.Fatalf("output %q, want %q (the verified layer's file, then the written lines)", out, want)
		}
		// The host's old blocks that were never overwritten keep its own
		// plaintext, so only the written data is looked for.
		disk, err := os.ReadFile(rw.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(disk, []byte("integrt\x00")) || bytes.Contains(disk, []byte(marker)) {
			t.Fatalf("the upper disk starts with %q and holds the written data in plaintext: %v; want dm-integrity's superblock and ciphertext",
				disk[:16], bytes.Contains(disk, []byte(marker)))
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
