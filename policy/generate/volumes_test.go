package generate

import (
	"strings"
	"testing"
)

// volumePod has a disk emptyDir and a claim: block volumes the runtime
// mounts under the sandbox's storage directory.
const volumePod = `apiVersion: v1
kind: Pod
metadata: {name: vols}
spec:
  containers:
  - name: app
    image: app-image
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
    - {name: data, mountPath: /data}
  volumes:
  - name: scratch
    emptyDir: {}
  - name: data
    persistentVolumeClaim: {claimName: data}
`

// TestBlockVolumeNames: the Go runtime names a block volume's mount point
// base64url(source) with "=" padding (src/runtime/virtcontainers/
// kata_agent.go handleBlkOCIMounts); such a request is allowed, and a
// mount point that climbs out of the storage directory is still denied,
// naming the field.
func TestBlockVolumeNames(t *testing.T) {
	_, text := buildFake(t, volumePod, "")
	in, err := ParseInput([]byte(volumePod), defaults(t).PassThrough)
	if err != nil {
		t.Fatal(err)
	}
	rt := &miniRuntime{t: t, in: in, images: fakeImages(in), runDir: "/run/kata-containers"}
	w := in.Workloads[0]
	q := prepareCreate(t, text)
	req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
	if len(req.Storages) != 3 || !strings.HasSuffix(req.Storages[1].MountPoint, "=") {
		t.Fatalf("fixture: want two block storages named with padding, got %v", req.Storages)
	}
	if allowed, problems := decideCreate(t, q, req); !allowed {
		t.Errorf("block volumes named with padding denied: %v", problems)
	}
	for _, name := range []string{"..", "."} {
		req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
		up := "/run/kata-containers/sandbox/storage/" + name
		for _, m := range req.OCI.Mounts {
			if m.Source == req.Storages[1].MountPoint {
				m.Source = up
			}
		}
		req.Storages[1].MountPoint = up
		allowed, problems := decideCreate(t, q, req)
		if allowed || len(problems) != 1 || !strings.Contains(problems[0], "storages[1].mount_point") {
			t.Errorf("mount point %q: allowed %v, problems %q do not name storages[1].mount_point", up, allowed, problems)
		}
	}
}
