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
	text, rt := fakeRuntime(t, volumePod)
	w := rt.in.Workloads[0]
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

// imageVolumePod's image declares VOLUMEs: /data, which no volumeMount
// covers, and /cache, which one does.
const imageVolumePod = `apiVersion: v1
kind: Pod
metadata: {name: redis}
spec:
  containers:
  - name: app
    image: redis-image
    volumeMounts:
    - {name: cache, mountPath: /cache/}
  volumes:
  - name: cache
    emptyDir: {medium: Memory}
`

// TestImageVolumes: containerd mounts an image VOLUME that no volumeMount
// covers from a host directory the runtime shares (internal/cri/server/
// container_create.go volumeMounts); such a request is allowed, and the
// volume from anywhere else is denied, naming the field.
func TestImageVolumes(t *testing.T) {
	s := defaults(t)
	in, err := ParseInput([]byte(imageVolumePod), s.PassThrough)
	if err != nil {
		t.Fatal(err)
	}
	images := fakeImages(in)
	for _, im := range images {
		im.Config.Volumes = map[string]struct{}{"/data": {}, "/cache": {}}
	}
	allow, err := s.Enabled(nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := newBuilder(s, in, images, allow, "").build()
	if err != nil {
		t.Fatal(err)
	}
	text, err := Render(data)
	if err != nil {
		t.Fatal(err)
	}
	rt := &miniRuntime{t: t, in: in, images: images, runDir: "/run/kata-containers"}
	w := in.Workloads[0]
	q := prepareCreate(t, text)
	req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
	if allowed, problems := decideCreate(t, q, req); !allowed {
		t.Errorf("image volume denied: %v", problems)
	}
	for _, src := range []string{"/run/kata-containers/sandbox/storage/ZGF0YQ==", "/etc", rt.sharedPath(req.ContainerId, "other")} {
		req := rt.request(w, rt.podName(w), w.Spec.Containers[0])
		found := false
		for _, m := range req.OCI.Mounts {
			if m.Destination == "/data" {
				m.Source, found = src, true
			}
		}
		if !found {
			t.Fatal("fixture: no /data mount")
		}
		allowed, problems := decideCreate(t, q, req)
		if allowed || len(problems) != 1 || !strings.Contains(problems[0], "OCI.Mounts: /data from") {
			t.Errorf("/data from %q: allowed %v, problems %q do not name the mount", src, allowed, problems)
		}
	}
}
