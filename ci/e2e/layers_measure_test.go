package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/layer"
)

// measureMiB is the size of the measured image's files: the 300 MB.
const measureMiB = 320

// meminfoScript prints the guest's tmpfs and page-cache totals as the
// container's first output (a container's /proc/meminfo is the guest's).
const meminfoScript = `grep -E '^(Shmem|Cached):' /proc/meminfo | tr -s ' ' | tr '\n' ' '; echo`

// meminfo reads "Shmem: N kB Cached: M kB" into KiB.
func meminfo(t *testing.T, out string) (shmem, cached int64) {
	t.Helper()
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		n, err := strconv.ParseInt(f[i+1], 10, 64)
		switch {
		case err != nil:
		case f[i] == "Shmem:":
			shmem = n
		case f[i] == "Cached:":
			cached = n
		}
	}
	if shmem == 0 || cached == 0 {
		t.Fatalf("no meminfo in %q", out)
	}
	return shmem, cached
}

// TestMeasureSharedLayersVsGuestPull runs one image of measureMiB of files
// both ways in one VM, host-shared verified layers first, then guest pull
// from a registry, and reports the time from CreateContainer to the first
// output and the growth of the guest's tmpfs (Shmem) and page cache
// (Cached) that each costs (docs/benchmarks.md). It checks what must hold
// whatever the speed: the shared layers cost no tmpfs for the image, the
// pulled image does.
func TestMeasureSharedLayersVsGuestPull(t *testing.T) {
	a := artifacts(t)
	rng := rand.New(rand.NewChaCha8([32]byte{'c', 'o', 'c', 'o', 'o', 'n'}))
	ref := testregistry.Build(t, t.TempDir(), []string{"/bin/sh"},
		func(t testing.TB, rootfs string) {
			testenv.BusyboxRootfs(t, rootfs)
			dir := filepath.Join(rootfs, "data")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1<<20)
			for i := range measureMiB / 16 { // files of 16 MiB, incompressible
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%02d", i)))
				if err != nil {
					t.Fatal(err)
				}
				for range 16 {
					for j := 0; j < len(buf); j += 8 {
						v := rng.Uint64()
						for k := range 8 {
							buf[j+k] = byte(v >> (8 * k))
						}
					}
					if _, err := f.Write(buf); err != nil {
						t.Fatal(err)
					}
				}
				f.Close()
			}
		})
	m, err := layer.LookupMkfs(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	layers, err := layer.BuildImage(context.Background(), m, ref, t.TempDir(), layer.ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("layer build (cocoonctl layer build --image, %d MiB of files): %s", measureMiB, time.Since(start).Round(10*time.Millisecond))
	var hashes []string
	for _, l := range layers {
		hashes = append(hashes, l.Verity.RootHashHex())
	}
	disk := Disk{Path: filepath.Join(t.TempDir(), "layers.img"), Slot: 0x1c}
	parts, _ := gptDisk(t, disk.Path, layers)

	reg := startTLSRegistry(t, guestGateway)
	dest := fmt.Sprintf("docker://127.0.0.1:%d/e2e/big:latest", reg.Port)
	testregistry.Run(t, nil, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", ref, dest)
	cdh := "[image]\nextra_root_certificates = [" + strconv.Quote(reg.CAPEM) + "]\n"
	img := initdataImage(t, pinningPolicy(t, a.Root, hashes), map[string]string{"cdh.toml": cdh})
	v := boot(t, VMConfig{Drives: []string{img}, Disks: []Disk{disk}})
	c := connect(t, v)
	sid := "e2e-measure-" + randomHex(t, 4)
	if _, err := c.Agent.CreateSandbox(callCtx(t), &agentpb.CreateSandboxRequest{Hostname: "e2e-pod", SandboxId: sid}); err != nil {
		t.Fatal(err)
	}
	// run creates and starts a container whose first output is the
	// guest's meminfo, and returns the time from CreateContainer to that
	// output and the output.
	run := func(t *testing.T, cid string, storages []*agentpb.Storage, root string) (time.Duration, string) {
		spec := pauseSpec(sid)
		spec.Process = &agentpb.Process{Args: []string{"/bin/sh", "-c", meminfoScript}, Cwd: "/", User: &agentpb.User{}, Env: []string{"PATH=/bin"}}
		spec.Root = &agentpb.Root{Path: root}
		spec.Annotations = map[string]string{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sid}
		spec.Linux.CgroupsPath = "/kubepods/e2e/" + cid
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		start := time.Now()
		if _, err := c.Agent.CreateContainer(ctx, &agentpb.CreateContainerRequest{ContainerId: cid, ExecId: cid, OCI: spec, Storages: storages}); err != nil {
			t.Fatalf("CreateContainer: %v", err)
		}
		if _, err := c.Agent.StartContainer(ctx, &agentpb.StartContainerRequest{ContainerId: cid}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		r, err := c.Agent.ReadStdout(ctx, &agentpb.ReadStreamRequest{ContainerId: cid, ExecId: cid, Len: 32 << 10})
		if err != nil || len(r.Data) == 0 {
			t.Fatalf("first output: %v", err)
		}
		first := time.Since(start)
		out := string(r.Data) + readAll(t, c.Agent, cid)
		if _, err := c.Agent.WaitProcess(ctx, &agentpb.WaitProcessRequest{ContainerId: cid, ExecId: cid}); err != nil {
			t.Fatalf("WaitProcess: %v", err)
		}
		return first, out
	}
	// The baseline: a container on the layers, which reads only
	// busybox and /proc.
	_, out := run(t, "e2e-base", layerStorages(disk, "e2e-base", layers, parts), "/run/kata-containers/shared/containers/e2e-base/rootfs")
	shm0, cache0 := meminfo(t, out)

	sharedFirst, out := run(t, "e2e-shared", layerStorages(disk, "e2e-shared", layers, parts), "/run/kata-containers/shared/containers/e2e-shared/rootfs")
	shm1, cache1 := meminfo(t, out)

	pullRoot := "/run/kata-containers/e2e-pulled/rootfs"
	pullFirst, out := run(t, "e2e-pulled", []*agentpb.Storage{{
		Driver: "image_guest_pull", Source: reg.ref(guestGateway, "e2e/big"), MountPoint: pullRoot,
		DriverOptions: []string{`image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"container"}}`},
	}}, pullRoot)
	shm2, cache2 := meminfo(t, out)

	t.Logf("MEASURE image=%dMiB layers=%d shared_first_output=%s pull_first_output=%s ratio=%.3f "+
		"shared_shmem_growth_kib=%d shared_cache_growth_kib=%d pull_shmem_growth_kib=%d pull_cache_growth_kib=%d",
		measureMiB, len(layers), sharedFirst.Round(time.Millisecond), pullFirst.Round(time.Millisecond),
		sharedFirst.Seconds()/pullFirst.Seconds(), shm1-shm0, cache1-cache0, shm2-shm1, cache2-cache1)
	if shm1-shm0 > 8<<10 {
		t.Errorf("host-shared layers grew the guest's tmpfs by %d KiB", shm1-shm0)
	}
	if shm2-shm1 < measureMiB<<10 {
		t.Errorf("guest pull grew the guest's tmpfs by only %d KiB for %d MiB of files: not measuring the pull", shm2-shm1, measureMiB)
	}
}
